"""The PR2-like sim node over real DDS, plus the parameter-file reader and trajectory parsing it relies on.

ROS tests run the real SimNode in this process (own rclpy context, executor in a thread) and talk to it
from a second context, i.e. a second DDS participant, on a per-test ROS_DOMAIN_ID so parallel runs and
other workers on the machine do not hear each other.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mil_sim.families.placing import HOME_QPOS
from mil_sim.pr2_arm import ARM_JOINT_NAMES, GRIPPER_JOINT_NAME, GRIPPER_MAX_OPENING
from mil_sim.ros_params import ParamsFileError, load_node_params, to_parameter_overrides
from mil_sim.sim_node import PARAMETERS, CommandError, parse_trajectory

ROOT = Path(__file__).resolve().parents[3]
SIM_YAML = ROOT / "config" / "sim.yaml"


# ------------------------------------------------------------------------------------------ ros_params


def test_sim_yaml_sets_every_sim_node_parameter() -> None:
    params = load_node_params(SIM_YAML, "mil_sim")
    declared = {name: default for name, default, *_ in PARAMETERS}
    assert set(params) == set(declared)
    for name, value in params.items():
        assert type(value) is type(declared[name]), f"{name}: {value!r} vs default {declared[name]!r}"
    assert params["family"] == "placing" and params["image_topic"] == "/head_mount_kinect/rgb/image_raw"
    assert load_node_params(SIM_YAML, "/mil_sim") == params
    overrides = to_parameter_overrides(params)
    assert {p.name: p.value for p in overrides} == params


def test_wildcard_then_node_section_nested_names_and_namespaces(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(
        "/**:\n  ros__parameters: {use_sim_time: true, rate: 5.0}\n"
        "/mil_sim:\n  ros__parameters:\n    rate: 20.0\n    cam: {size: [320, 240], fps: 10.0}\n"
        "    gains: [1, 2.5]\n"
        "/robot/other:\n  ros__parameters: {x: 1}\n"
        "/ns:\n  nested:\n    ros__parameters: {y: two}\n"
    )
    assert load_node_params(f, "mil_sim") == {
        "use_sim_time": True,
        "rate": 20.0,
        "cam.size": [320, 240],
        "cam.fps": 10.0,
        "gains": [1.0, 2.5],
    }
    assert load_node_params(f, "other", namespace="/robot") == {"use_sim_time": True, "rate": 5.0, "x": 1}
    assert load_node_params(f, "nested", namespace="ns")["y"] == "two"
    assert load_node_params(f, "anyone") == {"use_sim_time": True, "rate": 5.0}  # wildcard only


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("mil_sim: {ros__parameters: {a: [1, 2}", "not valid YAML"),
        ("", "must map node names"),
        ("- a\n- b\n", "must map node names"),
        ("other_node:\n  ros__parameters: {a: 1}\n", r"no section for node '/mil_sim' \(sections: 'other"),
        ("mil_sim: {a: 1}\n", "expected a mapping with a 'ros__parameters' key"),
        ("mil_sim: {ros__parameters: [1, 2]}\n", "must be a mapping of names to values"),
        ("mil_sim: {ros__parameters: {a: []}}\n", "'a' is an empty list"),
        ("mil_sim: {ros__parameters: {a: [1, x]}}\n", "'a' mixes element types"),
        ("mil_sim: {ros__parameters: {a: null}}\n", "'a' has unsupported value None"),
    ],
)
def test_params_file_errors_are_clear(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ParamsFileError, match=match):
        load_node_params(f, "mil_sim")


def test_missing_params_file(tmp_path: Path) -> None:
    with pytest.raises(ParamsFileError, match=r"nope\.yaml does not exist"):
        load_node_params(tmp_path / "nope.yaml", "mil_sim")


# ----------------------------------------------------------------------------------- trajectory parsing


def test_parse_trajectory_reorders_names_and_starts_from_current_positions() -> None:
    q = HOME_QPOS.copy()
    names = list(reversed(ARM_JOINT_NAMES))
    goal = q[::-1] + 0.05  # in the message's joint order
    plan = parse_trajectory(names, [(1.0, goal - 0.025), (2.0, goal)], q, start=10.0, now=10.0)
    assert plan is not None
    np.testing.assert_array_equal(plan.joints, np.arange(7)[::-1])
    np.testing.assert_allclose(plan.times, [10.0, 11.0, 12.0])
    np.testing.assert_allclose(plan.target(10.0), q[::-1])
    np.testing.assert_allclose(plan.target(11.5), goal - 0.0125)
    np.testing.assert_allclose(plan.target(99.0), goal)
    # Velocities come back in arm order: 0.025 rad over the 1 s first segment.
    np.testing.assert_allclose(plan.velocity(q, 10.0, 0.05), np.full(7, 0.025), atol=1e-9)
    assert not plan.reached(q, 12.0) and plan.reached(q + 0.05, 12.0)
    # Stamped to start later: hold still until then.
    late = parse_trajectory(names, [(1.0, goal)], q, start=20.0, now=10.0)
    assert late is not None and np.all(late.velocity(q, 10.0, 0.05) == 0.0)
    assert parse_trajectory(names, [], q, 0.0, 0.0) is None  # empty = stop


@pytest.mark.parametrize(
    ("names", "points", "match"),
    [
        (["r_shoulder_pan_joint", "l_elbow"], [(1.0, [0.0, 0.0])], "unknown joint names"),
        ([], [(1.0, [])], "no joint names"),
        (["r_wrist_roll_joint", "r_wrist_roll_joint"], [(1.0, [0.0, 0.0])], "duplicate"),
        (["r_wrist_roll_joint"], [(1.0, [0.0, 0.0])], "2 positions for 1 joint"),
        (["r_wrist_roll_joint"], [(1.0, [float("nan")])], "non-finite"),
        (["r_wrist_roll_joint"], [(1.0, [0.0]), (1.0, [0.1])], "strictly increasing"),
        (["r_elbow_flex_joint"], [(1.0, [0.5])], r"outside the joint limits: r_elbow_flex_joint=0\.500"),
    ],
)
def test_parse_trajectory_rejects_malformed(names: list[str], points: list[Any], match: str) -> None:
    with pytest.raises(CommandError, match=match):
        parse_trajectory(names, points, np.full(7, -0.5), start=0.0, now=0.0)


def test_parse_trajectory_rejects_one_that_ended_in_the_past() -> None:
    with pytest.raises(CommandError, match="in the past"):
        parse_trajectory(["r_wrist_roll_joint"], [(1.0, [0.0])], np.zeros(7), start=5.0, now=7.0)


# ------------------------------------------------------------------------------------------- ROS tests


class Harness:
    """A SimNode spinning in a thread (context A) and a probe node plus SimClient in context B."""

    def __init__(self, domain_id: int, **params: Any) -> None:
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.parameter import Parameter
        from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Float64MultiArray, String
        from trajectory_msgs.msg import JointTrajectory

        from mil_sim.sim_client import SimClient
        from mil_sim.sim_node import SimNode

        self.sim_ctx, self.ctx = Context(), Context()
        rclpy.init(context=self.sim_ctx, domain_id=domain_id)
        rclpy.init(context=self.ctx, domain_id=domain_id)
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        self.sim = SimNode(context=self.sim_ctx, parameter_overrides=overrides)
        self.sim_exec = SingleThreadedExecutor(context=self.sim_ctx)
        self.sim_exec.add_node(self.sim)
        self.thread = threading.Thread(target=self.sim_exec.spin, daemon=True)
        self.thread.start()

        self.node = Node("probe", context=self.ctx)
        self.exec = SingleThreadedExecutor(context=self.ctx)
        self.exec.add_node(self.node)
        self.msgs: dict[str, list[Any]] = {k: [] for k in ("image", "joints", "pose", "task", "clock")}
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        subs = [
            (Image, "/head_mount_kinect/rgb/image_raw", "image", qos_profile_sensor_data),
            (JointState, "/joint_states", "joints", 50),
            (PoseStamped, "/r_gripper_tool_frame/pose", "pose", 50),
            (String, "/mil/task", "task", latched),
            (Clock, "/clock", "clock", 50),
        ]
        for msg_type, topic, key, qos in subs:
            self.node.create_subscription(msg_type, topic, self.msgs[key].append, qos)
        pub = self.node.create_publisher
        self.vel_pub = pub(Float64MultiArray, "/r_arm_velocity_controller/commands", 10)
        self.traj_pub = pub(JointTrajectory, "/r_arm_controller/joint_trajectory", 10)
        self.grip_pub = pub(Float64MultiArray, "/r_gripper_controller/commands", 10)
        self.client = SimClient(self.ctx)
        self.Float64MultiArray, self.JointTrajectory = Float64MultiArray, JointTrajectory

    def spin_until(
        self, cond: Callable[[], bool], timeout: float, what: str, every: Callable[[], None] | None = None
    ) -> None:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            if every is not None:
                every()
            self.exec.spin_once(timeout_sec=0.02)

    def spin_for(self, seconds: float, every: Callable[[], None] | None = None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if every is not None:
                every()
            self.exec.spin_once(timeout_sec=0.05)

    def wait_connected(self) -> None:
        """Discovery done: we hear joint states and the sim hears our three command publishers."""
        self.spin_until(lambda: len(self.msgs["joints"]) > 0, 10.0, "the first /joint_states")
        pubs = (self.vel_pub, self.traj_pub, self.grip_pub)
        self.spin_until(lambda: all(p.get_subscription_count() > 0 for p in pubs), 10.0, "sim subscribers")

    def arm(self) -> np.ndarray:
        return np.array(self.msgs["joints"][-1].position[:7])

    def fresh_arm(self) -> np.ndarray:
        n = len(self.msgs["joints"])
        self.spin_until(lambda: len(self.msgs["joints"]) > n + 1, 5.0, "new joint states")
        return self.arm()

    def velocity(self, data: list[float]) -> None:
        self.vel_pub.publish(self.Float64MultiArray(data=data))

    def close(self) -> None:
        import rclpy

        self.client.close()
        self.node.destroy_node()
        self.exec.shutdown()
        self.sim_exec.shutdown()
        self.thread.join(timeout=5.0)
        self.sim.destroy_node()
        rclpy.shutdown(context=self.ctx)
        rclpy.shutdown(context=self.sim_ctx)


@pytest.fixture
def harness(domain_id: int) -> Iterator[Harness]:
    h = Harness(domain_id)
    try:
        h.wait_connected()
        yield h
    finally:
        h.close()


@pytest.mark.ros
def test_publishes_camera_joint_states_pose_and_task(harness: Harness) -> None:
    h = harness
    h.spin_until(lambda: len(h.msgs["image"]) >= 2 and len(h.msgs["pose"]) >= 2, 10.0, "images and poses")
    from mil_sim.image_msgs import msg_to_rgb

    img = h.msgs["image"][-1]
    assert (img.encoding, img.header.frame_id) == ("rgb8", "head_mount_kinect_rgb_optical_frame")
    rgb = msg_to_rgb(img)
    assert rgb.shape == (240, 320, 3) and rgb.std() > 10.0  # a rendered scene, not a blank frame
    js = h.msgs["joints"][-1]
    assert tuple(js.name) == (*ARM_JOINT_NAMES, GRIPPER_JOINT_NAME)
    assert len(js.position) == len(js.velocity) == 8
    pose = h.msgs["pose"][-1]
    assert pose.header.frame_id == "base_link"
    q = pose.pose.orientation
    assert abs(q.w**2 + q.x**2 + q.y**2 + q.z**2 - 1.0) < 1e-6 and 0.6 < pose.pose.position.z < 1.2
    h.spin_until(lambda: len(h.msgs["task"]) > 0, 5.0, "the latched task")
    assert json.loads(h.msgs["task"][-1].data)["task_id"] == "placing/test/0"
    assert not h.msgs["clock"]  # real time: the node does not publish /clock


@pytest.mark.ros
def test_velocity_command_moves_joints_then_times_out(harness: Harness) -> None:
    h = harness
    q0 = h.fresh_arm()
    cmd = [0.4, 0.0, 0.0, 0.0, 0.0, 0.0, -0.4]
    # Command until the pan joint has turned 0.2 rad (how long depends on the machine's load).
    h.spin_until(lambda: h.arm()[0] - q0[0] > 0.2, 20.0, "the joints to move", every=lambda: h.velocity(cmd))
    q1 = h.fresh_arm()
    assert q1[0] - q0[0] > 0.2 and q0[6] - q1[6] > 0.2, (q0, q1)
    np.testing.assert_allclose(q1[1:6], q0[1:6], atol=1e-9)
    # Malformed commands are dropped (the last good one keeps holding until the stale timeout).
    h.velocity([1.0, 2.0])
    h.velocity([float("nan")] * 7)
    h.spin_for(1.0)  # > command_timeout_s without a command: the arm stops
    q2 = h.fresh_arm()
    h.spin_for(0.3)
    q3 = h.fresh_arm()
    np.testing.assert_allclose(q3, q2, atol=1e-9)
    assert np.all(np.abs(np.array(h.msgs["joints"][-1].velocity)) < 1e-9)
    assert h.sim.executor is not None  # still spinning after the bad messages


@pytest.mark.ros
def test_trajectory_reaches_goal_in_any_joint_order(harness: Harness) -> None:
    from builtin_interfaces.msg import Duration
    from trajectory_msgs.msg import JointTrajectoryPoint

    h = harness
    q0 = h.fresh_arm()
    goal = q0 + np.array([0.15, 0.1, -0.1, 0.12, 0.2, 0.1, 0.25])
    order = [3, 0, 6, 1, 5, 2, 4]
    bad = h.JointTrajectory(joint_names=["r_shoulder_pan_joint", "bogus_joint"])
    bad.points = [JointTrajectoryPoint(positions=[0.0, 0.0], time_from_start=Duration(sec=1))]
    h.traj_pub.publish(bad)
    traj = h.JointTrajectory(joint_names=[ARM_JOINT_NAMES[i] for i in order])
    mid = (q0 + goal) / 2
    traj.points = [
        JointTrajectoryPoint(positions=[float(p[i]) for i in order], time_from_start=Duration(nanosec=ns))
        for p, ns in ((mid, 400_000_000), (goal, 800_000_000))
    ]
    h.traj_pub.publish(traj)
    h.spin_until(lambda: np.max(np.abs(h.arm() - goal)) < 2e-3, 20.0, f"the trajectory goal {goal}")
    h.spin_for(0.3)
    np.testing.assert_allclose(h.fresh_arm(), goal, atol=2e-3)  # and it stays there


@pytest.mark.ros
def test_gripper_end_episode_and_success(harness: Harness) -> None:
    h = harness
    closed_gap = h.msgs["joints"][-1].position[7]
    h.grip_pub.publish(h.Float64MultiArray(data=[0.01]))  # below half the max opening: stays closed
    h.grip_pub.publish(h.Float64MultiArray(data=[1.0, 2.0]))  # malformed: ignored
    h.spin_for(0.3)
    assert json.loads(h.client.success().message)["gripper_open"] is False
    h.grip_pub.publish(h.Float64MultiArray(data=[GRIPPER_MAX_OPENING]))
    h.spin_until(lambda: h.msgs["joints"][-1].position[7] > closed_gap + 1e-3, 5.0, "the gripper to open")
    assert h.msgs["joints"][-1].position[7] == pytest.approx(GRIPPER_MAX_OPENING)
    ended = h.client.end_episode()
    assert ended.success and "settled" in ended.message
    result = h.client.success()
    details = json.loads(result.message)
    assert details["gripper_open"] is True and details["task_id"] == "placing/test/0"
    # The arm never moved over the target, so the item fell next to it (not a success).
    assert result.success is details["item_in_target"] is details["success"] is False
    assert details["held_position"][2] < 0.9  # it fell after release


@pytest.mark.ros
def test_reset_bad_task_fails_cleanly_good_task_switches(harness: Harness) -> None:
    from mil_sim.sim_client import reset_to

    h = harness
    bad = reset_to(h.client, "placing/test/99999", 0)
    assert not bad.success
    assert "unknown task id 'placing/test/99999'" in bad.message
    assert "still on placing/test/0 trial 0" in bad.message
    assert not h.client.reset_to("placing/test/1", -1).success  # a negative seed is refused by numpy
    n = len(h.msgs["joints"])
    h.spin_until(lambda: len(h.msgs["joints"]) > n + 2, 5.0, "joint states after the failed reset")
    assert h.sim.env.task.task_id == "placing/test/0"

    q_before = h.fresh_arm()
    good = reset_to(h.node, "placing/test/1", 3)  # the one-shot form, with a node for the context
    assert good.success and "placing/test/1 trial 3" in good.message, good.message
    h.spin_until(lambda: json.loads(h.msgs["task"][-1].data)["task_id"] == "placing/test/1", 5.0, "new task")
    # A new trial starts from a new jittered pose. Joint states queued before the reset may still be
    # taken after the task message (one message per subscription per spin), so wait for the new pose
    # rather than reading the next two messages.
    h.spin_until(lambda: bool(np.max(np.abs(h.arm() - q_before)) > 1e-3), 5.0, "the new trial's jittered pose")


@pytest.mark.ros
def test_fast_mode_publishes_clock_and_stamps_with_sim_time(domain_id: int) -> None:
    h = Harness(domain_id, real_time=False, camera_rate_hz=5.0)
    try:
        h.wait_connected()
        h.spin_until(lambda: len(h.msgs["clock"]) >= 20, 10.0, "/clock messages")
        clocks = [m.clock.sec + 1e-9 * m.clock.nanosec for m in h.msgs["clock"]]
        assert np.all(np.diff(clocks) > 0)
        np.testing.assert_allclose(np.diff(clocks), 0.05, atol=1e-6)  # one control period per step
        stamp = h.msgs["joints"][-5].header.stamp  # joint states carry the sim time of their step
        assert np.min(np.abs(np.array(clocks) - (stamp.sec + 1e-9 * stamp.nanosec))) < 1e-6
    finally:
        h.close()


@pytest.mark.ros
def test_unsupported_family_and_bad_params_file_fail_clearly(domain_id: int, tmp_path: Path) -> None:
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from mil_sim.sim_node import SimConfigError, SimNode, main

    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    try:
        with pytest.raises(SimConfigError, match="family 'reaching' is not supported"):
            SimNode(context=ctx, parameter_overrides=[Parameter("family", value="reaching")])
        with pytest.raises(SimConfigError, match="unknown task id 'placing/nope/1'"):
            SimNode(context=ctx, parameter_overrides=[Parameter("task_id", value="placing/nope/1")])
        with pytest.raises(SimConfigError, match="'real_time' must be of type bool, got 'yes'"):
            SimNode(context=ctx, parameter_defaults={"real_time": "yes"})
        # File values (pip-mode --params-file) are defaults: --ros-args -p still wins, as under ros2 run.
        file_values = {**load_node_params(SIM_YAML, "mil_sim"), "trial_seed": 5, "control_rate_hz": 10}
        cli = ["--ros-args", "-p", "trial_seed:=2"]
        node = SimNode(context=ctx, parameter_defaults=file_values, cli_args=cli)
        try:
            assert node.env.trial_seed == 2 and node.settings.control_rate_hz == 10.0
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
    assert main(["--params-file", str(tmp_path / "missing.yaml")]) == 2
    f = tmp_path / "sim.yaml"
    f.write_text("mil_sim:\n  ros__parameters: {family: pushing}\n")
    assert main(["--params-file", str(f)]) == 2
