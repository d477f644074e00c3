"""ROS 2 policy node: adapt to ONE demonstration, then drive the arm with end-effector velocities.

A thin adapter around :class:`mil_policy.runner.PolicyRunner`. States, published on ``~/state`` as
JSON (latched): ``idle`` (no demo yet), ``adapting``, ``running``, ``done`` (horizon reached, gripper
opened), ``fault`` (bad checkpoint, bad demo, stale inputs, invalid action: the reason is in
``detail``). In every state but ``running`` it publishes zero twists, and it does so on shutdown too.

==================================  ==============================  ========================================
``/head_mount_kinect/rgb/image_raw``  sensor_msgs/Image (sensor QoS)  sub: camera
``/joint_states``                   sensor_msgs/JointState          sub: arm joint positions
``/r_gripper_tool_frame/pose``      geometry_msgs/PoseStamped       sub: tool position (robot state)
``~/demo_bag``                      std_msgs/String                 sub: path of a demo bag to adapt to now
``/ee_cmd_vel``                     geometry_msgs/TwistStamped      pub: tool twist, base_link
``/gripper/open``                   std_msgs/Bool                   pub: true at the end of the horizon
``~/state``                         std_msgs/String (JSON, latched) pub: state, detail, step, timings
``~/start`` / ``~/stop``            std_srvs/Trigger                start a rollout / stop (zero twist)
==================================  ==============================  ========================================
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from mil_policy.defaults import default_checkpoint, default_demo_bag
from mil_policy.runner import PolicyRunner
from mil_sim.image_msgs import msg_to_rgb
from mil_sim.node_main import run_node
from mil_sim.node_params import NodeConfigError, declare_parameters
from mil_sim.pr2_arm import ARM_JOINT_NAMES

NODE_NAME = "mil_policy"
PARAMETERS = (
    ("checkpoint", "", "checkpoint directory (safetensors + config.json); '' = the shipped default", True),
    ("demo_bag", "", "demo bag to adapt to at start; '' = wait for ~/demo_bag ('default' = the shipped demo)", True),
    ("demo_inputs", "", "what the demo provides: full, no_actions, video_only ('' = the checkpoint's)", True),
    ("auto_start", True, "start the rollout as soon as adaptation finished", True),
    ("publish_rate_hz", 20.0, "rate at which the current twist is re-sent (keeps the bridge watchdog fed)", True),
    ("image_timeout_s", 0.5, "fault when the newest camera image is older than this while running", True),
    ("state_timeout_s", 0.5, "fault when joint states or tool pose are older than this while running", True),
    ("startup_timeout_s", 5.0, "after start, wait this long for the first image and state before faulting", True),
    ("device", "cpu", "torch device for adaptation and inference", True),
    ("torch_threads", 1, "torch CPU threads: the network is small, and more threads starve the other nodes", True),
    ("base_frame_id", "base_link", "frame of the published twists", True),
    ("image_topic", "/head_mount_kinect/rgb/image_raw", "camera images", True),
    ("joint_states_topic", "/joint_states", "joint states", True),
    ("tool_pose_topic", "/r_gripper_tool_frame/pose", "tool pose", True),
    ("twist_topic", "/ee_cmd_vel", "twist commands out", True),
    ("gripper_topic", "/gripper/open", "gripper commands out", True),
)
IDLE, ADAPTING, RUNNING, DONE, FAULT = "idle", "adapting", "running", "done", "fault"


class PolicyNode(Node):
    def __init__(self, *, parameter_defaults: Mapping[str, Any] | None = None, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        try:
            self.params = p = declare_parameters(self, PARAMETERS, parameter_defaults)
        except NodeConfigError:
            super().destroy_node()
            raise
        self._lock = threading.Lock()
        self.state, self.detail = IDLE, "waiting for a demo"
        self.runner: PolicyRunner | None = None
        self._image: tuple[float, Any] | None = None  # (receipt time, message)
        self._q: tuple[float, np.ndarray] | None = None
        self._tool: tuple[float, np.ndarray] | None = None
        self._joint_index: dict[str, int] = {}
        self._twist = np.zeros(6)
        self._step = 0
        self._started_at = 0.0
        self._gripper_open = False

        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._state_pub = self.create_publisher(String, "~/state", latched)
        self._twist_pub = self.create_publisher(TwistStamped, p["twist_topic"], 10)
        self._grip_pub = self.create_publisher(Bool, p["gripper_topic"], latched)
        self.create_subscription(Image, p["image_topic"], self._on_image, qos_profile_sensor_data)
        self.create_subscription(JointState, p["joint_states_topic"], self._on_joints, 10)
        self.create_subscription(PoseStamped, p["tool_pose_topic"], self._on_tool, 10)
        self.create_subscription(String, "~/demo_bag", lambda m: self.request_adaptation(m.data), 1)
        self.create_service(Trigger, "~/start", self._on_start)
        self.create_service(Trigger, "~/stop", self._on_stop)
        self._publish_state()
        self._load_checkpoint()
        if self.runner is not None:
            self._policy_timer = self.create_timer(1.0 / self.runner.policy_rate_hz, self._on_policy_tick)
            self.create_timer(1.0 / p["publish_rate_hz"], self._on_publish_tick)
            if p["demo_bag"]:
                self.request_adaptation(p["demo_bag"])

    # -- state ------------------------------------------------------------------------------------
    def _set_state(self, state: str, detail: str) -> None:
        with self._lock:
            self.state, self.detail = state, detail
        if state == FAULT:
            self.get_logger().error(f"fault: {detail}")
        else:
            self.get_logger().info(f"{state}: {detail}")
        self._publish_state()

    def _publish_state(self) -> None:
        info: dict[str, Any] = {"state": self.state, "detail": self.detail, "step": self._step}
        if self.runner is not None:
            info["horizon"] = self.runner.horizon
            info["adapt_seconds"] = self.runner.adapt_seconds
            if self.runner.step_times.seconds:
                info["step_latency_p50_ms"] = 1e3 * self.runner.step_times.percentile(50)
                info["step_latency_p99_ms"] = 1e3 * self.runner.step_times.percentile(99)
        self._state_pub.publish(String(data=json.dumps(info)))

    def _load_checkpoint(self) -> None:
        path = self.params["checkpoint"] or str(default_checkpoint())
        if self.params["torch_threads"] > 0:
            torch.set_num_threads(self.params["torch_threads"])
        try:
            self.runner = PolicyRunner(
                path, demo_inputs=self.params["demo_inputs"] or None, device=self.params["device"]
            )
        except (ValueError, OSError) as exc:
            self.runner = None
            self._set_state(FAULT, f"cannot load checkpoint {path}: {exc}")
            return
        self.get_logger().info(
            f"loaded {self.runner.config.method} checkpoint {path} ({self.runner.family.name}, "
            f"T={self.runner.horizon} at {self.runner.policy_rate_hz:.2f} Hz, demo inputs {self.runner.demo_inputs})"
        )

    # -- adaptation -------------------------------------------------------------------------------
    def request_adaptation(self, bag: str) -> None:
        """Adapt to a demo bag in a background thread, so the node keeps publishing zeros meanwhile."""
        if self.runner is None:
            self.get_logger().error("no checkpoint loaded: cannot adapt")
            return
        if self.state == ADAPTING:
            self.get_logger().warning(f"already adapting; ignoring demo {bag}")
            return
        path = str(default_demo_bag()) if bag == "default" else bag
        self._set_state(ADAPTING, f"adapting to {path}")
        threading.Thread(target=self._adapt, args=(path,), daemon=True, name="mil_adapt").start()

    def _adapt(self, path: str) -> None:
        assert self.runner is not None
        try:
            seconds = self.runner.adapt(self.runner.load_demo(Path(path)))
        except Exception as exc:
            self._set_state(FAULT, f"adaptation to {path} failed: {exc}")
            return
        self.get_logger().info(f"adapted to {path} in {seconds * 1e3:.0f} ms")
        if self.params["auto_start"]:
            self._begin()
        else:
            self._set_state(IDLE, f"adapted to {path} in {seconds:.3f} s; call ~/start")

    def _begin(self) -> None:
        assert self.runner is not None
        self.runner.reset()
        self._step = 0
        self._started_at = self._now()
        self._gripper_open = False
        self._grip_pub.publish(Bool(data=False))
        self._set_state(RUNNING, "rolling out")

    # -- inputs -----------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_image(self, msg: Image) -> None:
        self._image = (self._now(), msg)

    def _on_joints(self, msg: JointState) -> None:
        if any(n not in self._joint_index for n in ARM_JOINT_NAMES):
            self._joint_index = {n: i for i, n in enumerate(msg.name)}
        try:
            q = np.array([msg.position[self._joint_index[n]] for n in ARM_JOINT_NAMES])
        except (KeyError, IndexError):
            self._joint_index = {}
            return
        self._q = (self._now(), q)

    def _on_tool(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        self._tool = (self._now(), np.array([p.x, p.y, p.z]))

    def _stale(self) -> str | None:
        """Why the inputs are not usable now, or None. A stream that never arrived is waited for until
        ``startup_timeout_s`` after the start (reported as "waiting: ..."), then it is a fault."""
        now, p = self._now(), self.params
        for name, item, limit in (
            ("camera image", self._image, p["image_timeout_s"]),
            ("joint states", self._q, p["state_timeout_s"]),
            ("tool pose", self._tool, p["state_timeout_s"]),
        ):
            if item is None:
                waited = now - self._started_at
                if waited < p["startup_timeout_s"]:
                    return f"waiting: no {name} yet"
                return f"no {name} received in {waited:.1f} s"
            if now - item[0] > limit:
                return f"{name} stale ({now - item[0]:.2f} s old, limit {limit:g} s)"
        return None

    # -- control ----------------------------------------------------------------------------------
    def _on_policy_tick(self) -> None:
        if self.state != RUNNING or self.runner is None:
            return
        stale = self._stale()
        if stale:
            self._twist = np.zeros(6)
            self._publish_twist()
            if not stale.startswith("waiting"):
                self._set_state(FAULT, stale)
            return
        if self._step >= self.runner.horizon:
            self._finish()
            return
        assert self._image is not None and self._q is not None and self._tool is not None
        try:
            camera = msg_to_rgb(self._image[1])
            state = np.concatenate([self._q[1], self._tool[1], [float(self._gripper_open)]])
            action = self.runner.act(camera, state)
        except ValueError as exc:
            self._twist = np.zeros(6)
            self._publish_twist()
            self._set_state(FAULT, f"step {self._step}: {exc}")
            return
        self._twist = action.astype(np.float64)
        self._step += 1
        self._publish_twist()
        if self._step % 10 == 0:
            self._publish_state()

    def _finish(self) -> None:
        """End of the horizon: stop and open the gripper, as the paper scripts it."""
        self._twist = np.zeros(6)
        self._publish_twist()
        self._gripper_open = True
        self._grip_pub.publish(Bool(data=True))
        self._set_state(DONE, f"{self._step} steps; gripper opened")

    def _on_publish_tick(self) -> None:
        if self.state != RUNNING:
            self._twist = np.zeros(6)
        self._publish_twist()

    def _publish_twist(self) -> None:
        msg = TwistStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.params["base_frame_id"]
        t = self._twist if self.state == RUNNING else np.zeros(6)
        msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(v) for v in t[:3])
        msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z = (float(v) for v in t[3:])
        self._twist_pub.publish(msg)

    def _on_start(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        if self.runner is None or self.runner.policy is None or self.state == ADAPTING:
            resp.success, resp.message = False, f"cannot start in state {self.state}: {self.detail}"
            return resp
        self._begin()
        resp.success, resp.message = True, "rolling out"
        return resp

    def _on_stop(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        self.stop()
        resp.success, resp.message = True, "stopped"
        return resp

    def stop(self) -> None:
        """Zero twist now; the adapted policy is kept (``~/start`` runs it again)."""
        self._twist = np.zeros(6)
        if self.state == RUNNING:
            self._set_state(IDLE, "stopped")
        self._publish_twist()


def main(argv: Sequence[str] | None = None) -> int:
    """``policy_node --params-file config/policy.yaml`` or ``ros2 run mil_policy policy_node --ros-args ...``."""
    return run_node(
        "policy_node",
        NODE_NAME,
        lambda defaults: PolicyNode(parameter_defaults=defaults),
        argv,
        description=__doc__.splitlines()[0],
        on_shutdown=lambda node: node.stop(),
    )


if __name__ == "__main__":
    sys.exit(main())
