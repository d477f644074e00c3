"""Start the MuJoCo PR2 stand-in alone: `ros2 launch mil_policy sim.launch.py [task_id:=placing/test/3]`.

Parameters come from config/sim.yaml (installed into mil_policy's share), the same file the pip-mode
bringup reads; launch arguments override single values.
"""

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    config = PathJoinSubstitution([FindPackageShare("mil_policy"), "config", "sim.yaml"])
    task_id = LaunchConfiguration("task_id")
    trial_seed = LaunchConfiguration("trial_seed")
    real_time = LaunchConfiguration("real_time")
    return LaunchDescription(
        [
            DeclareLaunchArgument("task_id", default_value="placing/test/0", description="task to load"),
            DeclareLaunchArgument("trial_seed", default_value="1", description="scene layout seed (sim.yaml's)"),
            DeclareLaunchArgument("real_time", default_value="true", description="wall-clock stepping"),
            Node(
                package="mil_sim",
                executable="sim_node",
                name="mil_sim",
                output="screen",
                parameters=[config, {"task_id": task_id, "trial_seed": trial_seed, "real_time": real_time}],
                additional_env={"MUJOCO_GL": "egl"},
            ),
        ]
    )
