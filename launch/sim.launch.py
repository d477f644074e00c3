"""Start the MuJoCo PR2 stand-in alone: `ros2 launch mil_policy sim.launch.py [task_id:=placing/test/3]`.

Parameters come from config/sim.yaml (installed into mil_policy's share), the same file the pip-mode
bringup reads. A launch argument overrides its parameter only when given: the arguments default to ''
and an empty one is left out, so sim.yaml stays the one place the defaults live.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.launch_context import LaunchContext
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

# Launch argument -> what it sets (parameters of sim.yaml, same names).
OVERRIDABLE = {
    "task_id": "task to load, e.g. placing/test/3",
    "trial_seed": "scene layout seed",
    "real_time": "wall-clock stepping (true) or as fast as possible with /clock (false)",
}


def _sim_node(context: LaunchContext) -> list[Node]:
    config = PathJoinSubstitution([FindPackageShare("mil_policy"), "config", "sim.yaml"])
    # The substitution, not its performed string, so launch_ros types the value (trial_seed an int).
    given = {name: LaunchConfiguration(name) for name in OVERRIDABLE if LaunchConfiguration(name).perform(context)}
    return [
        Node(
            package="mil_sim",
            executable="sim_node",
            name="mil_sim",
            output="screen",
            parameters=[config, given] if given else [config],
            additional_env={"MUJOCO_GL": "egl"},
        )
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            *(
                DeclareLaunchArgument(name, default_value="", description=f"{text} (default: sim.yaml's)")
                for name, text in OVERRIDABLE.items()
            ),
            OpaqueFunction(function=_sim_node),
        ]
    )
