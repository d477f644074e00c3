"""ROS 2 node: policy / teleop end-effector commands -> PR2 right-arm and gripper controller commands.

A thin adapter around :class:`mil_pr2_bridge.bridge.Bridge` (IK + safety, no ROS inside). It speaks
the PR2's ros2_control conventions, so the same node drives the MuJoCo stand-in or a real PR2:

=====================================  ===============================  =====================================
``/ee_cmd_vel``                        geometry_msgs/TwistStamped       sub: tool twist in ``base_link``
``/gripper/open``                      std_msgs/Bool                    sub: true = open, false = close
``/joint_states``                      sensor_msgs/JointState           sub: arm joint positions
``/estop``                             std_msgs/Bool                    sub: true latches the e-stop
``/r_arm_velocity_controller/commands``  std_msgs/Float64MultiArray (7) pub: joint velocities, control rate
``/r_gripper_controller/commands``     std_msgs/Float64MultiArray (1)   pub: gripper gap (m)
``~/status``                           std_msgs/String                  pub: "ok" or why the arm is stopped
``~/reset_estop``                      std_srvs/Trigger                 releases the latched e-stop
=====================================  ===============================  =====================================

Zero joint velocities go out whenever commands stop for ``watchdog_timeout_s`` (default 0.2 s), joint
states go stale, or the e-stop is latched, and once more on shutdown.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import Trigger

from mil_pr2_bridge.bridge import Bridge
from mil_pr2_bridge.safety import SafetyConfig
from mil_sim.node_main import run_node
from mil_sim.node_params import NodeConfigError, declare_parameters
from mil_sim.pr2_arm import ARM_JOINT_NAMES, GRIPPER_MAX_OPENING

NODE_NAME = "mil_pr2_bridge"
PARAMETERS = (
    ("control_rate_hz", 50.0, "rate of joint velocity commands to the arm controller", True),
    ("max_linear_speed", 0.25, "clamp on the norm of the commanded linear velocity (m/s)", True),
    ("max_angular_speed", 0.6, "clamp on the norm of the commanded angular velocity (rad/s)", True),
    ("workspace_min", [0.25, -0.65, 0.62], "tool workspace box lower corner in base_link (m)", True),
    ("workspace_max", [0.85, 0.25, 1.25], "tool workspace box upper corner in base_link (m)", True),
    ("watchdog_timeout_s", 0.2, "stop the arm when no command arrived for this long", True),
    ("state_timeout_s", 0.5, "stop the arm when joint states are older than this", True),
    ("base_frame_id", "base_link", "frame twists must be expressed in ('' is taken as this frame)", True),
    ("twist_topic", "/ee_cmd_vel", "tool twist commands (TwistStamped)", True),
    ("gripper_topic", "/gripper/open", "gripper open/close commands (Bool)", True),
    ("joint_states_topic", "/joint_states", "arm joint states", True),
    ("estop_topic", "/estop", "e-stop (Bool, true latches)", True),
    ("velocity_command_topic", "/r_arm_velocity_controller/commands", "7 arm joint velocities out", True),
    ("gripper_command_topic", "/r_gripper_controller/commands", "gripper gap out (m)", True),
)


class BridgeNode(Node):
    def __init__(self, *, parameter_defaults: Mapping[str, Any] | None = None, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        try:
            p = declare_parameters(self, PARAMETERS, parameter_defaults)
            safety = SafetyConfig(
                max_linear_speed=p["max_linear_speed"],
                max_angular_speed=p["max_angular_speed"],
                workspace_min=p["workspace_min"],
                workspace_max=p["workspace_max"],
                watchdog_timeout=p["watchdog_timeout_s"],
                state_timeout=p["state_timeout_s"],
            )
        except (NodeConfigError, ValueError):
            super().destroy_node()
            raise
        self.params = p
        self.bridge = Bridge(safety)
        self._index: dict[str, int] | None = None
        self._last_reason = ""
        self._vel_pub = self.create_publisher(Float64MultiArray, p["velocity_command_topic"], 10)
        self._grip_pub = self.create_publisher(Float64MultiArray, p["gripper_command_topic"], 10)
        self._status_pub = self.create_publisher(String, "~/status", 10)
        self.create_subscription(TwistStamped, p["twist_topic"], self._on_twist, 10)
        self.create_subscription(Bool, p["gripper_topic"], self._on_gripper, 10)
        self.create_subscription(JointState, p["joint_states_topic"], self._on_joint_states, 10)
        self.create_subscription(Bool, p["estop_topic"], self._on_estop, 10)
        self.create_service(Trigger, "~/reset_estop", self._on_reset_estop)
        self.create_timer(1.0 / p["control_rate_hz"], self._on_tick)
        self.get_logger().info(
            f"bridge up: {p['twist_topic']} -> {p['velocity_command_topic']} at {p['control_rate_hz']:g} Hz, "
            f"watchdog {safety.watchdog_timeout:g} s, |v| <= {safety.max_linear_speed:g} m/s"
        )

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_twist(self, msg: TwistStamped) -> None:
        frame = msg.header.frame_id
        if frame not in ("", self.params["base_frame_id"]):
            self.get_logger().warning(
                f"rejected twist in frame {frame!r}; expected {self.params['base_frame_id']!r}",
                throttle_duration_sec=2.0,
            )
            return
        t, w = msg.twist.linear, msg.twist.angular
        try:
            self.bridge.command(np.array([t.x, t.y, t.z, w.x, w.y, w.z]), self._now())
        except ValueError as e:
            self.get_logger().warning(str(e), throttle_duration_sec=2.0)

    def _on_gripper(self, msg: Bool) -> None:
        if self.bridge.estop.engaged:
            return
        gap = GRIPPER_MAX_OPENING if msg.data else 0.0
        self._grip_pub.publish(Float64MultiArray(data=[gap]))

    def _on_joint_states(self, msg: JointState) -> None:
        if self._index is None or any(n not in self._index for n in ARM_JOINT_NAMES):
            self._index = {n: i for i, n in enumerate(msg.name)}
        try:
            q = np.array([msg.position[self._index[n]] for n in ARM_JOINT_NAMES])
        except (KeyError, IndexError):
            self._index = None
            return  # a joint state message of another part of the robot (head, other arm)
        if np.all(np.isfinite(q)):
            self.bridge.joint_state(q, self._now())

    def _on_estop(self, msg: Bool) -> None:
        if msg.data:
            self.bridge.estop.trigger("e-stop topic")
            self._publish(np.zeros(7))
            self.get_logger().error("E-STOP engaged: arm stopped until ~/reset_estop")

    def _on_reset_estop(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        was = self.bridge.estop.engaged
        self.bridge.estop.reset()
        resp.success = True
        resp.message = "e-stop released" if was else "e-stop was not engaged"
        self.get_logger().info(resp.message)
        return resp

    def _on_tick(self) -> None:
        out = self.bridge.update(self._now())
        self._publish(out.joint_velocities)
        if out.reason != self._last_reason:
            self._last_reason = out.reason
            self._status_pub.publish(String(data=out.reason))
            if out.reason == "ok":  # rclpy requires one severity per call site
                self.get_logger().info("arm: moving")
            else:
                self.get_logger().warning(f"arm stopped: {out.reason}")

    def _publish(self, qdot: np.ndarray) -> None:
        self._vel_pub.publish(Float64MultiArray(data=[float(v) for v in qdot]))

    def stop_arm(self) -> None:
        """Send zero velocities (on shutdown): the arm must not keep the last command."""
        self._publish(np.zeros(7))


def main(argv: Sequence[str] | None = None) -> int:
    """``bridge_node --params-file config/bridge.yaml`` (pip mode) or ``ros2 run mil_pr2_bridge bridge_node``."""
    return run_node(
        "bridge_node",
        NODE_NAME,
        lambda defaults: BridgeNode(parameter_defaults=defaults),
        argv,
        description=__doc__.splitlines()[0],
        on_shutdown=lambda node: node.stop_arm(),
    )


if __name__ == "__main__":
    sys.exit(main())
