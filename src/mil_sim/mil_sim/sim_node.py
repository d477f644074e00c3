"""ROS 2 node that makes the MuJoCo placing sim look like a PR2: same topics, messages and controllers.

The bridge, the policy runner and the demo recorder are written against a PR2 with ros2_control
controllers, so this node is a thin adapter: everything task-specific stays in
:class:`mil_sim.families.placing.PlacingEnv`, and the node only turns messages into
``apply_joint_velocities`` / ``set_gripper`` calls and sim state into messages.

Interface (names are parameters; defaults in ``config/sim.yaml``):

==========================================  =================================  ==========================
``/head_mount_kinect/rgb/image_raw``        sensor_msgs/Image ``rgb8``         pub, camera rate, sensor QoS
``/joint_states``                           sensor_msgs/JointState             pub, control rate
``/r_gripper_tool_frame/pose``              geometry_msgs/PoseStamped          pub, control rate, base_link
``/mil/task``                               std_msgs/String (task JSON)        pub, latched, on reset
``/clock``                                  rosgraph_msgs/Clock                pub, if not ``real_time``
``/r_arm_velocity_controller/commands``     std_msgs/Float64MultiArray (7)     sub: joint velocities (rad/s)
``/r_arm_controller/joint_trajectory``      trajectory_msgs/JointTrajectory    sub: joint position trajectory
``/r_gripper_controller/commands``          std_msgs/Float64MultiArray (1)     sub: gripper gap (m)
``~/reset``                                 std_srvs/Trigger                   new trial (task_id, trial_seed)
``~/end_episode``                           std_srvs/Trigger                   open gripper and settle
``~/success``                               std_srvs/Trigger                   success flag + JSON details
==========================================  =================================  ==========================

All callbacks share the node's default (mutually exclusive) callback group, so the env is never touched
by two callbacks at once even under a MultiThreadedExecutor. Rendering runs on one dedicated thread:
an offscreen EGL context can be current in only one thread, so rendering from whichever executor thread
runs the callback (or closing the renderer from the main thread) would fail with EGL_BAD_ACCESS.

Time: with ``real_time`` the physics advances one control period per wall-clock timer tick and messages
carry the node clock's stamps. Without it the node steps as fast as it can, publishes ``/clock`` and
stamps with that sim time (monotonic across resets); the other nodes run with ``use_sim_time``. Command
timeouts and trajectory times are measured in the same time base the stamps use.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import PoseStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from mil_sim.core import TaskError
from mil_sim.families import get_family
from mil_sim.families.placing import PlacingEnv, PlacingFamily
from mil_sim.image_msgs import fill_msg
from mil_sim.kinematics import scale_to_limits
from mil_sim.node_main import run_node
from mil_sim.node_params import NodeConfigError, declare_parameters
from mil_sim.pr2_arm import ARM_JOINT_NAMES, ARM_VELOCITY_LIMITS, GRIPPER_MAX_OPENING, arm_joint_limits

NODE_NAME = "mil_sim"
SUPPORTED_FAMILIES = ("placing",)
ARM_DOF = len(ARM_JOINT_NAMES)
GOAL_TOLERANCE = 1e-3  # rad: a trajectory counts as finished once every joint is this close to its goal
WARN_PERIOD_S = 2.0  # at most one warning per kind of rejected command in this many seconds

# name, default, description, read_only. Floats are declared with dynamic typing so that "20" in a YAML
# file or on the command line is accepted for a double (rclpy would reject the INTEGER otherwise).
PARAMETERS: tuple[tuple[str, Any, str, bool], ...] = (
    ("family", "placing", "task family; the PR2 sim node supports only 'placing'", True),
    ("task_id", "placing/test/0", "task loaded at start and by ~/reset (family/split/index)", False),
    ("trial_seed", 0, "trial layout seed used at start and by ~/reset", False),
    ("real_time", True, "true: wall-clock timer; false: step as fast as possible, publish /clock", True),
    ("control_rate_hz", 20.0, "physics control steps per second of sim time", True),
    ("camera_rate_hz", 10.0, "camera frames per second of sim time", True),
    ("command_timeout_s", 0.5, "joint velocity commands older than this are replaced by zero", True),
    ("goal_time_tolerance_s", 2.0, "drop a trajectory this long after its end if not at its goal", True),
    ("base_frame_id", "base_link", "frame of the tool pose", True),
    ("camera_frame_id", "head_mount_kinect_rgb_optical_frame", "frame_id of the camera images", True),
    ("image_topic", "/head_mount_kinect/rgb/image_raw", "camera image topic", True),
    ("joint_states_topic", "/joint_states", "joint state topic", True),
    ("tool_pose_topic", "/r_gripper_tool_frame/pose", "tool frame pose topic", True),
    ("velocity_command_topic", "/r_arm_velocity_controller/commands", "7 arm joint velocities", True),
    ("trajectory_topic", "/r_arm_controller/joint_trajectory", "arm joint trajectories", True),
    ("gripper_command_topic", "/r_gripper_controller/commands", "gripper gap in metres", True),
    ("task_topic", "/mil/task", "latched task JSON, re-sent on every reset", True),
)


class SimConfigError(NodeConfigError):
    """A sim node parameter has a value the node cannot run with (message says which and why)."""


class CommandError(ValueError):
    """A malformed arm or gripper command; the node rejects it with a warning and keeps going."""


@dataclass(frozen=True)
class SimSettings:
    """The read-only parameters, validated once at start."""

    family: str
    real_time: bool
    control_rate_hz: float
    camera_rate_hz: float
    command_timeout_s: float
    goal_time_tolerance_s: float
    base_frame_id: str
    camera_frame_id: str
    topics: dict[str, str]


@dataclass
class TrajectoryPlan:
    """A joint trajectory on the sim time axis, followed by linear interpolation of its positions."""

    joints: np.ndarray  # (n,) indices into ARM_JOINT_NAMES
    times: np.ndarray  # (K,) absolute sim times, strictly increasing
    positions: np.ndarray  # (K, n)

    @property
    def start(self) -> float:
        return float(self.times[0])

    @property
    def end(self) -> float:
        return float(self.times[-1])

    def target(self, t: float) -> np.ndarray:
        """Desired positions of ``joints`` at sim time ``t`` (held at the ends)."""
        return np.array([np.interp(t, self.times, self.positions[:, j]) for j in range(len(self.joints))])

    def velocity(self, q: np.ndarray, t: float, dt: float) -> np.ndarray:
        """Arm joint velocities (7,) that bring ``q`` onto the trajectory at ``t + dt``; zero before start."""
        qdot = np.zeros(ARM_DOF)
        if t + dt < self.start:  # stamped to start later: hold still until then
            return qdot
        qdot[self.joints] = (self.target(t + dt) - q[self.joints]) / dt
        return qdot

    def reached(self, q: np.ndarray, t: float) -> bool:
        return t >= self.end and bool(np.all(np.abs(q[self.joints] - self.positions[-1]) < GOAL_TOLERANCE))


def parse_trajectory(
    joint_names: Sequence[str],
    points: Sequence[tuple[float, Sequence[float]]],
    q_now: np.ndarray,
    start: float,
    now: float,
) -> TrajectoryPlan | None:
    """Validate a JointTrajectory (names + (time_from_start, positions) points) into a plan.

    Like ros2_control's joint_trajectory_controller: names may come in any order and may be a subset of
    the arm (the others hold still); the first segment starts from the current positions at ``start``;
    an empty trajectory means "stop" (returns None). Raises CommandError for anything malformed.
    """
    names = list(joint_names)
    unknown = [n for n in names if n not in ARM_JOINT_NAMES]
    if unknown:
        raise CommandError(f"unknown joint names {unknown}; the arm has {list(ARM_JOINT_NAMES)}")
    if not names:
        raise CommandError("trajectory has no joint names")
    if len(set(names)) != len(names):
        raise CommandError(f"duplicate joint names in {names}")
    if not points:
        return None
    idx = np.array([ARM_JOINT_NAMES.index(n) for n in names])
    limits = arm_joint_limits()
    times, rows = [], []
    for k, (t, pos) in enumerate(points):
        p = np.asarray(pos, dtype=np.float64)
        if p.shape != (len(names),):
            raise CommandError(f"point {k} has {p.size} positions for {len(names)} joint names")
        if not (np.all(np.isfinite(p)) and np.isfinite(t)):
            raise CommandError(f"point {k} has a non-finite position or time")
        if t < 0 or (times and t <= times[-1]):
            raise CommandError(f"time_from_start must be >= 0 and strictly increasing (point {k}: {t:.3f} s)")
        outside = (p < limits.lower[idx] - 1e-9) | (p > limits.upper[idx] + 1e-9)
        if np.any(outside):
            bad = [
                f"{names[j]}={p[j]:.3f} not in [{limits.lower[idx][j]:.3f}, {limits.upper[idx][j]:.3f}]"
                for j in np.flatnonzero(outside)
            ]
            raise CommandError(f"point {k} is outside the joint limits: {', '.join(bad)}")
        times.append(float(t))
        rows.append(p)
    if start + times[-1] < now:
        late = now - start - times[-1]
        raise CommandError(f"trajectory ends {late:.3f} s in the past (header.stamp too old)")
    if times[0] > 0.0:  # first segment: from where the arm is when the trajectory starts
        times.insert(0, 0.0)
        rows.insert(0, q_now[idx].copy())
    return TrajectoryPlan(joints=idx, times=start + np.array(times), positions=np.array(rows))


def _seconds(t: TimeMsg | Any) -> float:
    return float(t.sec) + 1e-9 * float(t.nanosec)


def _time_msg(seconds: float) -> TimeMsg:
    ns = round(seconds * 1e9)
    return TimeMsg(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class SimNode(Node):
    """The placing sim as a PR2: camera, joint states and tool pose out; controller commands in."""

    def __init__(
        self,
        *,
        node_name: str = NODE_NAME,
        parameter_overrides: list[Parameter] | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
        **node_kwargs: Any,
    ) -> None:
        """``parameter_overrides`` win over ``--ros-args``; ``parameter_defaults`` (e.g. the pip-mode
        ``--params-file``) only replace the built-in defaults, so ``--ros-args -p`` still wins over them.
        """
        super().__init__(node_name, parameter_overrides=parameter_overrides, **node_kwargs)
        self._defaults = dict(parameter_defaults or {})
        self._render_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mil_sim_render")
        try:
            self._setup()
        except Exception:  # e.g. a bad parameter: free the rcl node so the caller can report and exit
            self._render_thread.shutdown()
            super().destroy_node()
            raise

    def _setup(self) -> None:
        self.settings = self._declare_parameters()
        s = self.settings
        self._dt = 1.0 / s.control_rate_hz
        self._camera_period = 1.0 / s.camera_rate_hz
        self._family = get_family(s.family)
        if not isinstance(self._family, PlacingFamily):  # get_family("placing") always is; keeps mypy honest
            raise SimConfigError(f"family {s.family!r} did not give a PlacingFamily")
        task_id = self.get_parameter("task_id").value
        seed = self.get_parameter("trial_seed").value
        try:
            self._env: PlacingEnv = self._make_env(task_id, seed)
        except (TaskError, ValueError) as e:
            raise SimConfigError(f"cannot start on task_id={task_id!r} trial_seed={seed}: {e}") from None
        self._sim_time = 0.0  # seconds of physics since the node started; monotonic across resets
        self._next_image_time = 0.0
        self._velocity = np.zeros(ARM_DOF)
        self._velocity_time: float | None = None  # command time base; None = no live velocity command
        self._arm_velocity = np.zeros(ARM_DOF)  # measured over the last control period, for joint_states
        self._trajectory: TrajectoryPlan | None = None
        self._last_warn: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.steps = 0

        t = s.topics
        self._image_pub = self.create_publisher(Image, t["image_topic"], qos_profile_sensor_data)
        self._joint_pub = self.create_publisher(JointState, t["joint_states_topic"], 10)
        self._pose_pub = self.create_publisher(PoseStamped, t["tool_pose_topic"], 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._task_pub = self.create_publisher(String, t["task_topic"], latched)
        self._clock_pub = None if s.real_time else self.create_publisher(ClockMsg, "/clock", 10)
        self.create_subscription(Float64MultiArray, t["velocity_command_topic"], self._on_velocity, 10)
        self.create_subscription(JointTrajectory, t["trajectory_topic"], self._on_trajectory, 10)
        self.create_subscription(Float64MultiArray, t["gripper_command_topic"], self._on_gripper, 10)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_service(Trigger, "~/end_episode", self._on_end_episode)
        self.create_service(Trigger, "~/success", self._on_success)
        # A steady-clock timer: the sim is the time source, so it must not wait on /clock itself (which
        # it would if someone started it with use_sim_time). Period 0 = step as fast as possible.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._timer = self.create_timer(self._dt if s.real_time else 0.0, self._on_tick, clock=steady)

        if s.real_time and self.get_parameter("use_sim_time").value:
            self.get_logger().warning(
                "use_sim_time is true but real_time is true, so nothing publishes /clock: stamps will stay 0 "
                "until some other node does (set use_sim_time false for the sim, or real_time false)"
            )
        self._publish_task()
        self._publish_state()
        self.get_logger().info(
            f"placing sim up: {self._describe_task()}; "
            f"{'real time' if s.real_time else 'as fast as possible, publishing /clock'}, "
            f"control {s.control_rate_hz:g} Hz, camera {s.camera_rate_hz:g} Hz "
            f"{self._family.config.camera_width}x{self._family.config.camera_height} on {t['image_topic']}"
        )

    # -- parameters ---------------------------------------------------------------------------------
    def _declare_parameters(self) -> SimSettings:
        try:
            values = declare_parameters(self, PARAMETERS, self._defaults)
        except NodeConfigError as e:
            raise SimConfigError(str(e)) from None
        if values["family"] not in SUPPORTED_FAMILIES:
            raise SimConfigError(
                f"family {values['family']!r} is not supported by the PR2 sim node (supported: "
                f"{', '.join(SUPPORTED_FAMILIES)}); reaching/pushing run only in the offline rollouts"
            )
        if values["camera_rate_hz"] > values["control_rate_hz"]:
            raise SimConfigError(
                f"camera_rate_hz {values['camera_rate_hz']:g} exceeds control_rate_hz "
                f"{values['control_rate_hz']:g}; frames are rendered at most once per control step"
            )
        topics = {n: values[n] for n, *_ in PARAMETERS if n.endswith("_topic")}
        for name, topic in topics.items():
            if not isinstance(topic, str) or not topic:
                raise SimConfigError(f"parameter {name!r} must be a topic name, got {topic!r}")
        return SimSettings(
            family=values["family"],
            real_time=bool(values["real_time"]),
            control_rate_hz=values["control_rate_hz"],
            camera_rate_hz=values["camera_rate_hz"],
            command_timeout_s=values["command_timeout_s"],
            goal_time_tolerance_s=values["goal_time_tolerance_s"],
            base_frame_id=values["base_frame_id"],
            camera_frame_id=values["camera_frame_id"],
            topics=topics,
        )

    # -- env ----------------------------------------------------------------------------------------
    def _make_env(self, task_id: str, trial_seed: int) -> PlacingEnv:
        task = self._family.task(task_id)
        env = self._family.make_env(task, int(trial_seed), render=False)  # render=False: no GL in reset()
        env.reset()
        return env

    def _describe_task(self) -> str:
        env = self._env
        o = env.task.objects
        return (
            f"task {env.task.task_id} trial {env.trial_seed} (held {o['held']} -> target {o['target']}, "
            f"distractors {o['distractor_0']}, {o['distractor_1']})"
        )

    @property
    def env(self) -> PlacingEnv:
        """The current trial (replaced by ~/reset); for tests and in-process tools."""
        return self._env

    @property
    def sim_time(self) -> float:
        return self._sim_time

    def _now(self) -> float:
        """Seconds in the time base of the stamps (wall/ROS clock in real time, else sim time)."""
        if self.settings.real_time:
            return self.get_clock().now().nanoseconds * 1e-9
        return self._sim_time

    def _stamp(self) -> TimeMsg:
        if self.settings.real_time:
            return self.get_clock().now().to_msg()
        return _time_msg(self._sim_time)

    def _stop(self) -> None:
        self._velocity = np.zeros(ARM_DOF)
        self._velocity_time = None
        self._trajectory = None

    # -- control loop -------------------------------------------------------------------------------
    def _on_tick(self) -> None:
        """One control period of physics, then joint states, pose and (when due) a camera frame."""
        try:
            self.step_once()
        except Exception as e:  # a bug in one step must not take the executor (and the robot) down
            self._warn("tick", f"control step failed: {type(e).__name__}: {e}")

    def step_once(self) -> None:
        """Advance the physics by one control period under the current command and publish."""
        qdot = self._command_velocity()
        q_before = self._env.joint_positions()[:ARM_DOF]
        self._env.apply_joint_velocities(qdot, self._dt)
        # Reported velocity = what the arm actually did this period (commanded, after limit clamping).
        # PlacingEnv.joint_velocities() returns MuJoCo's qvel after the last physics substep, which
        # includes that substep's gravity acceleration on the kinematically driven arm.
        self._arm_velocity = (self._env.joint_positions()[:ARM_DOF] - q_before) / self._dt
        self._sim_time += self._dt
        self.steps += 1
        if self._clock_pub is not None:
            self._clock_pub.publish(ClockMsg(clock=_time_msg(self._sim_time)))
        self._publish_state()
        if self._sim_time + 1e-9 >= self._next_image_time:
            self._publish_image()
            self._next_image_time = max(self._next_image_time + self._camera_period, self._sim_time)

    def _command_velocity(self) -> np.ndarray:
        """Joint velocities for the coming period: the trajectory, else a fresh velocity command, else 0."""
        q = self._env.joint_positions()[:ARM_DOF]
        if self._trajectory is not None:
            plan = self._trajectory
            if plan.reached(q, self._sim_time):
                self.get_logger().info("trajectory finished: goal reached")
                self._trajectory = None
            elif self._sim_time > plan.end + self.settings.goal_time_tolerance_s:
                err = np.max(np.abs(q[plan.joints] - plan.positions[-1]))
                tol = self.settings.goal_time_tolerance_s
                self._warn(
                    "trajectory",
                    f"trajectory goal not reached {tol:g} s after its end (max error {err:.4f} rad); holding position",
                )
                self._trajectory = None
            else:
                return scale_to_limits(plan.velocity(q, self._sim_time, self._dt), ARM_VELOCITY_LIMITS)
            return np.zeros(ARM_DOF)
        if self._velocity_time is None:
            return np.zeros(ARM_DOF)
        age = self._now() - self._velocity_time
        if age > self.settings.command_timeout_s:
            self.get_logger().warning(
                f"joint velocity command is {age:.2f} s old (timeout {self.settings.command_timeout_s:g} s): "
                "stopping the arm"
            )
            self._stop()
            return np.zeros(ARM_DOF)
        return self._velocity

    # -- publishing ---------------------------------------------------------------------------------
    def _publish_state(self) -> None:
        stamp = self._stamp()
        js = JointState()
        js.header.stamp = stamp
        js.name = list(self._env.joint_names())
        js.position = self._env.joint_positions().tolist()
        js.velocity = [*self._arm_velocity.tolist(), 0.0]
        self._joint_pub.publish(js)
        p = self._env.ee_pose()
        pose = PoseStamped()
        pose.header.stamp = stamp
        pose.header.frame_id = self.settings.base_frame_id
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in p[:3])
        o = pose.pose.orientation
        o.w, o.x, o.y, o.z = (float(v) for v in p[3:])
        self._pose_pub.publish(pose)

    def _publish_image(self) -> None:
        msg = Image()
        msg.header.stamp = self._stamp()
        msg.header.frame_id = self.settings.camera_frame_id
        fill_msg(msg, self._render_thread.submit(self._env.render_camera).result(), "rgb8", as_bytes=True)
        self._image_pub.publish(msg)

    def _publish_task(self) -> None:
        self._task_pub.publish(String(data=self._env.task.to_json()))

    # -- commands -----------------------------------------------------------------------------------
    def _warn(self, kind: str, text: str) -> None:
        """Throttled per kind, so a commander spamming bad messages cannot flood the log."""
        now = time.monotonic()
        last = self._last_warn.get(kind)
        if last is not None and now - last < WARN_PERIOD_S:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        n = self._suppressed.pop(kind, 0)
        self._last_warn[kind] = now
        self.get_logger().warning(text + (f" ({n} similar messages suppressed)" if n else ""))

    def _on_velocity(self, msg: Float64MultiArray) -> None:
        v = np.asarray(msg.data, dtype=np.float64)
        if v.shape != (ARM_DOF,) or not np.all(np.isfinite(v)):
            self._warn(
                "velocity",
                f"rejected joint velocity command {list(msg.data)}: expected {ARM_DOF} "
                f"finite velocities (rad/s) for {list(ARM_JOINT_NAMES)}",
            )
            return
        if self._trajectory is not None:
            self.get_logger().info("joint velocity command replaces the running trajectory")
        self._trajectory = None
        self._velocity = scale_to_limits(v, ARM_VELOCITY_LIMITS)
        self._velocity_time = self._now()

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        points = [(_seconds(p.time_from_start), list(p.positions)) for p in msg.points]
        now = self._now()
        stamp = _seconds(msg.header.stamp)
        start = self._sim_time + (stamp - now if stamp > 0 else 0.0)
        try:
            plan = parse_trajectory(
                msg.joint_names, points, self._env.joint_positions()[:ARM_DOF], start, self._sim_time
            )
        except CommandError as e:
            self._warn("trajectory", f"rejected joint trajectory: {e}")
            return
        self._stop()
        if plan is None:
            self.get_logger().info("empty joint trajectory: stopping the arm")
            return
        self._trajectory = plan
        self.get_logger().info(
            f"following a {len(msg.points)}-point trajectory for {list(msg.joint_names)}, "
            f"ending in {plan.end - self._sim_time:.2f} s"
        )

    def _on_gripper(self, msg: Float64MultiArray) -> None:
        g = np.asarray(msg.data, dtype=np.float64)
        if g.shape != (1,) or not np.isfinite(g[0]):
            self._warn("gripper", f"rejected gripper command {list(msg.data)}: expected [gap in metres]")
            return
        open_ = bool(g[0] > GRIPPER_MAX_OPENING / 2)
        if open_ and not self._env.gripper_is_open():
            self._env.set_gripper(True)
            self.get_logger().info(f"gripper opened (gap {g[0]:.3f} m): item released")
        elif not open_ and self._env.gripper_is_open():
            self._warn("gripper_close", "gripper close ignored: the sim cannot re-grasp a released item")

    # -- services -----------------------------------------------------------------------------------
    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        task_id = self.get_parameter("task_id").value
        seed = self.get_parameter("trial_seed").value
        try:
            env = self._make_env(task_id, seed)
        except (TaskError, ValueError) as e:
            response.success = False
            response.message = (
                f"reset to task_id={task_id!r} trial_seed={seed} failed: {e}; "
                f"still on {self._env.task.task_id} trial {self._env.trial_seed}"
            )
            self.get_logger().error(response.message)
            return response
        old, self._env = self._env, env
        self._render_thread.submit(old.close).result()
        self._stop()
        self._arm_velocity = np.zeros(ARM_DOF)
        self._next_image_time = self._sim_time
        self._publish_task()
        self._publish_state()
        response.success = True
        response.message = f"reset to {self._describe_task()}"
        self.get_logger().info(response.message)
        return response

    def _on_end_episode(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._stop()
        self._env.end_episode()
        self._arm_velocity = np.zeros(ARM_DOF)
        self._sim_time += self._env.config.settle_seconds
        if self._clock_pub is not None:
            self._clock_pub.publish(ClockMsg(clock=_time_msg(self._sim_time)))
        self._publish_state()
        response.success = True
        response.message = (
            f"gripper opened and settled for {self._env.config.settle_seconds:g} s; success={self._env.success()}"
        )
        self.get_logger().info(f"episode ended: {response.message}")
        return response

    def _on_success(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        env = self._env
        held = env.held_position()
        target = env.container_position("target")
        response.success = bool(env.success())
        response.message = json.dumps(
            {
                "success": response.success,
                "task_id": env.task.task_id,
                "trial_seed": env.trial_seed,
                "gripper_open": env.gripper_is_open(),
                "item_in_target": env.item_in_container("target"),
                "held_position": [round(float(v), 4) for v in held],
                "target_position": [round(float(v), 4) for v in target],
                "xy_distance_to_target": round(env.target_distance(), 4),
                "sim_time": round(self._sim_time, 6),
            }
        )
        return response

    def destroy_node(self) -> None:
        """Release the renderer too (its EGL context is not freed by garbage collection reliably)."""
        self._render_thread.submit(self._env.close).result()
        self._render_thread.shutdown()
        super().destroy_node()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sim_node``: ``--params-file FILE`` (pip mode) or ``--ros-args ...`` (ROS)."""
    return run_node(
        "sim_node",
        NODE_NAME,
        lambda defaults: SimNode(parameter_defaults=defaults),
        argv,
        description="MuJoCo placing sim exposed like a PR2 (topics, controllers, services).",
    )


if __name__ == "__main__":
    sys.exit(main())
