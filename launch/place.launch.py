"""One-shot placing on a PR2 or its sim: `ros2 launch mil_policy place.launch.py [use_sim:=false] ...`.

Starts the MuJoCo sim (unless use_sim:=false, for the real robot), the PR2 bridge and the policy node,
each with its YAML from config/ (installed into mil_policy's share). The pip-only equivalent is
`./mil place` (mil_policy.bringup), which starts the same nodes with the same files; a test keeps the
two in step.
"""

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    config = PathJoinSubstitution([FindPackageShare("mil_policy"), "config"])
    use_sim = LaunchConfiguration("use_sim")
    return LaunchDescription(
        [
            DeclareLaunchArgument("use_sim", default_value="true", description="start the MuJoCo PR2 stand-in"),
            DeclareLaunchArgument("checkpoint", default_value="", description="checkpoint dir ('' = shipped)"),
            DeclareLaunchArgument("demo_bag", default_value="default", description="demo bag to adapt to"),
            DeclareLaunchArgument("demo_inputs", default_value="", description="full, no_actions, video_only"),
            Node(
                package="mil_sim",
                executable="sim_node",
                name="mil_sim",
                output="screen",
                condition=IfCondition(use_sim),
                # task_id / trial_seed come from sim.yaml (the shipped demo's task, a different layout);
                # change them at run time with `ros2 param set /mil_sim task_id ...` and ~/reset.
                parameters=[PathJoinSubstitution([config, "sim.yaml"])],
                additional_env={"MUJOCO_GL": "egl"},
            ),
            Node(
                package="mil_pr2_bridge",
                executable="bridge_node",
                name="mil_pr2_bridge",
                output="screen",
                parameters=[PathJoinSubstitution([config, "bridge.yaml"])],
            ),
            Node(
                package="mil_policy",
                executable="policy_node",
                name="mil_policy",
                output="screen",
                parameters=[
                    PathJoinSubstitution([config, "policy.yaml"]),
                    {
                        "checkpoint": LaunchConfiguration("checkpoint"),
                        "demo_bag": LaunchConfiguration("demo_bag"),
                        "demo_inputs": LaunchConfiguration("demo_inputs"),
                    },
                ],
            ),
        ]
    )
