"""The recorder's parts without DDS traffic: buttons, task labels, statistics, the raw-recording reader's
time alignment, and the node's parameters, refusals and Ctrl-C handling."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.serialization import serialize_message
from teleop_stream import expert_episode, record_offline

from mil_demo_recorder.joy_buttons import DISCARD, START, STOP, JoyButtons
from mil_demo_recorder.stats import StreamStats, sync_offsets_ms
from mil_demo_recorder.stop_drain import StopDrain
from mil_demo_recorder.streams import cdr_bool, cdr_stamp_ns
from mil_demo_recorder.task_info import TaskInfoError, task_metadata
from mil_sim import demo_bag as db

ROOT = Path(__file__).resolve().parents[3]
EP_STEPS = 40


@pytest.fixture(scope="module")
def episode() -> Any:
    return expert_episode("placing/train/0", 3, steps=EP_STEPS)


# ------------------------------------------------------------------------------------------- buttons


def test_buttons_act_on_the_press_not_while_held() -> None:
    joy = JoyButtons(start=0, stop=1, discard=2)
    assert joy.presses([1, 0, 0], recording=False) == [START]
    assert joy.presses([1, 0, 0], recording=True) == []  # still held
    assert joy.presses([0, 1, 0], recording=True) == [STOP]
    assert joy.presses([0, 0, 1], recording=False) == [DISCARD]
    assert joy.presses([0, 0], recording=False) == []  # a shorter message releases the rest


def test_one_button_toggles_and_minus_one_disables() -> None:
    joy = JoyButtons(start=3, stop=3, discard=-1)
    assert joy.presses([0, 0, 1, 1], recording=False) == [START]
    assert joy.presses([0, 0, 1, 0], recording=True) == []
    assert joy.presses([0, 0, 1, 1], recording=True) == [STOP]


# ------------------------------------------------------------------------------------------ task info


def _meta(params: dict[str, Any], topic: dict[str, Any] | None) -> dict[str, Any]:
    return task_metadata(
        params,
        topic,
        state_names=["s"],
        control_rate_hz=20.0,
        command_timeout_s=0.2,
        grid="control",
        gripper_open_initial=False,
    )


def test_parameters_win_and_the_task_topic_fills_the_rest() -> None:
    topic = {
        "family": "placing",
        "task_id": "placing/val/4",
        "split": "val",
        "objects": {"held": "a", "target": "b"},
    }
    meta = _meta({"task_id": "", "operator": "ana"}, topic)
    assert (meta["task_id"], meta["split"], meta["objects"], meta["operator"]) == (
        "placing/val/4",
        "val",
        {"held": "a", "target": "b"},
        "ana",
    )
    assert meta["task_from_topic"]
    meta = _meta({"task_id": "mug_to_bowl", "held": "mug", "target": "bowl", "distractors": "plate, cup"}, topic)
    assert meta["task_id"] == "mug_to_bowl" and meta["split"] == "val"
    assert meta["objects"] == {
        "held": "mug",
        "target": "bowl",
        "distractor_0": "plate",
        "distractor_1": "cup",
    }
    for key in ("family", "task_id", "split", "objects", "trial_seed", "action_kind"):
        assert key in meta  # what read_episode requires of a task JSON


def test_a_demo_without_task_or_with_a_bad_split_is_refused() -> None:
    with pytest.raises(TaskInfoError, match="no task"):
        _meta({}, None)
    with pytest.raises(TaskInfoError, match="split"):
        _meta({"task_id": "t", "split": "training"}, None)


# ------------------------------------------------------------------------------------------ statistics


def test_stats_count_sequence_gaps_per_publisher_and_backward_stamps() -> None:
    s = StreamStats("/ee_pose", "/pose", True)
    for seq, pub, stamp in [
        (1, "a", 10),
        (2, "a", 20),
        (5, "a", 30),
        (1, "b", 25),
        (3, "b", 40),
        (6, "a", 50),
    ]:
        s.on_receive(stamp + 1_000, stamp, seq, pub)
    assert s.dropped_transport == 3  # a: 3, 4 missing; b: 2 missing
    assert s.out_of_order == 1  # b's 25 after a's 30
    assert s.received == 6


class FakeClock:
    """A monotonic clock the test advances (the drain's rule is about time, not threads)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += dt


def test_a_stop_takes_what_arrived_before_it_and_waits_for_every_stream() -> None:
    clock = FakeClock()
    drain = StopDrain(["/ee_cmd_vel", "/camera/image_raw", "/joy"], idle_s=0.1, max_s=1.0, clock=clock)
    assert drain.admits("/ee_cmd_vel", 5) and drain.admits("/camera/image_raw", 5)  # recording: all in
    drain.begin(stop_ns=10)
    assert drain.active and not drain.done()  # both streams took a message just now: maybe more queued
    assert drain.admits("/ee_cmd_vel", 9)  # queued before the stop, taken after: still the demo's
    assert not drain.admits("/ee_cmd_vel", 11)  # arrived after the stop: left out, and the stream caught up
    assert not drain.done()  # the camera may still have a backlog
    clock.t += 0.05
    assert drain.admits("/camera/image_raw", 10) and not drain.done()
    clock.t += 0.11  # the camera took nothing more for idle_s: drained ("/joy" never published: idle)
    assert drain.done() and drain.wait(sleep=clock.sleep)
    drain.end()
    assert not drain.active and drain.admits("/ee_cmd_vel", 12)  # the next demo takes everything again


def test_a_stop_waits_at_most_max_s_when_a_stream_keeps_its_backlog() -> None:
    clock = FakeClock()
    drain = StopDrain(["/ee_cmd_vel"], idle_s=0.1, max_s=1.0, clock=clock)
    drain.begin(stop_ns=10)

    def sleep(dt: float) -> None:  # a stream that takes a pre-stop message every poll, forever
        clock.sleep(dt)
        drain.admits("/ee_cmd_vel", 9)

    start = clock.t
    assert drain.admits("/ee_cmd_vel", 9) and not drain.wait(sleep=sleep)
    assert 1.0 <= clock.t - start < 1.1


def test_sync_offset_is_the_distance_to_the_nearest_pose() -> None:
    poses = np.array([0, 10, 20, 30]) * 1_000_000
    images = np.array([1, 14, 30, 45]) * 1_000_000
    assert sync_offsets_ms(images, poses) == {"median": 2.5, "max": 15.0}


def test_stamp_and_bool_straight_from_cdr() -> None:
    from std_msgs.msg import Bool

    msg = PoseStamped()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_700_000_001, 5
    assert cdr_stamp_ns(serialize_message(msg)) == 1_700_000_001 * 10**9 + 5
    assert cdr_bool(serialize_message(Bool(data=True))) is True


# ------------------------------------------------------------------------ reading raw recordings


def test_commands_older_than_the_watchdog_become_zero_twists(tmp_path: Path, episode: Any) -> None:
    cut = 1_000_000_000  # the operator lets go of the controller after 1 s
    record_offline(tmp_path / "demo", episode, drop=lambda key, t: key == "command" and t > cut)
    ep = db.read_episode(tmp_path / "demo")
    sent = ep.times <= 1.0 + 1e-9
    held = ~sent & (ep.times <= 1.0 + 0.2 + 1e-9)  # the last command still drives the arm ...
    np.testing.assert_array_equal(ep.actions[sent], episode.actions[sent])
    assert held.sum() == 4 and (ep.actions[held] == episode.actions[20]).all()
    assert not ep.actions[~sent & ~held].any()  # ... until the bridge watchdog stops it


def test_a_stalled_stream_is_refused_unless_allowed(tmp_path: Path, episode: Any) -> None:
    record_offline(tmp_path / "demo", episode, drop=lambda key, t: key == "image" and 0.4e9 < t < 1.2e9)
    with pytest.raises(db.DemoBagError, match=r"/camera/image_raw was silent for 0\.75 s at t=1\.15 s"):
        db.read_episode(tmp_path / "demo")
    assert len(db.read_raw_episode(tmp_path / "demo", max_gap_s=1.0)) == EP_STEPS


def test_unset_header_stamps_fall_back_to_receipt_times(tmp_path: Path, episode: Any) -> None:
    def unstamped(key: str, msg: Any) -> Any:
        if hasattr(msg, "header"):
            msg.header.stamp.sec = msg.header.stamp.nanosec = 0
        return msg

    record_offline(tmp_path / "demo", episode, mutate=unstamped)
    ep = db.read_episode(tmp_path / "demo")
    assert len(ep) == EP_STEPS and ep.times[1] == pytest.approx(0.05)
    np.testing.assert_array_equal(ep.actions, episode.actions)


def test_compressed_camera_streams_are_decoded(tmp_path: Path, episode: Any) -> None:
    record_offline(tmp_path / "demo", episode, compressed=True)
    raw = db.read_raw_messages(tmp_path / "demo")
    assert db.IMAGE_TOPIC not in raw.messages and len(raw.messages[db.COMPRESSED_IMAGE_TOPIC]) == EP_STEPS // 2
    ep = db.read_episode(tmp_path / "demo")
    np.testing.assert_array_equal(ep.images, episode.images)  # png is lossless
    np.testing.assert_array_equal(ep.image_times, episode.image_times)


def test_sim_bags_are_read_as_before(tmp_path: Path, episode: Any) -> None:
    from mil_sim.families import get_family

    db.write_episode(tmp_path / "sim", episode, get_family("placing").state_names)
    assert not db.is_raw_recording(tmp_path / "sim")
    ep = db.read_episode(tmp_path / "sim")
    np.testing.assert_array_equal(ep.actions, episode.actions)
    assert ep.metadata == {}


# ------------------------------------------------------------------------------------------- the node


@pytest.fixture
def ros_context(domain_id: int) -> Iterator[Any]:
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    yield ctx
    rclpy.shutdown(context=ctx)


def _node(ctx: Any, tmp_path: Path, **params: Any) -> Any:
    from rclpy.parameter import Parameter

    from mil_demo_recorder.recorder_node import NODE_NAME, RecorderNode
    from mil_sim.ros_params import load_node_params

    defaults = load_node_params(ROOT / "config" / "recorder.yaml", NODE_NAME)
    overrides = [Parameter(k, value=v) for k, v in {"dataset_dir": str(tmp_path / "d"), **params}.items()]
    return RecorderNode(context=ctx, parameter_defaults=defaults, parameter_overrides=overrides)


@pytest.mark.ros
def test_config_file_starts_the_node_and_ctrl_c_finalises_the_demo_as_interrupted(
    ros_context: Any, tmp_path: Path
) -> None:
    from rosbags.rosbag2 import Reader

    node = _node(ros_context, tmp_path)
    try:
        assert node.params["start_button"] == 0 and node.params["min_rate_hz.image"] == 5.0
        # Nothing publishes on this test's domain: every recorded input topic shows 0 publishers.
        assert node.status()["publishers"] == {s.input_topic: 0 for s in node.streams}
        assert "/joy" in node.status()["publishers"]
        ok, why = node.start_demo()
        assert not ok and "no task" in why
        from rclpy.parameter import Parameter

        node.set_parameters([Parameter("task_id", value="placing/train/7"), Parameter("notes", value="first try")])
        ok, text = node.start_demo()
        assert ok, text
        assert node.start_demo() == (False, f"already recording {node.status()['demo']}")
        index = json.loads((tmp_path / "d" / "index.json").read_text())
        assert [d["status"] for d in index["demos"]] == ["recording"]
        node.shutdown()  # what main() does on Ctrl-C / SIGTERM
    finally:
        node.destroy_node()
    (bag,) = list((tmp_path / "d").glob("placing_train_7/demo_*"))
    meta = db.read_task_metadata(bag)
    assert (meta["status"], meta["complete"], meta["notes"]) == ("interrupted", False, "first try")
    assert any("no messages" in w for w in meta["stats"]["warnings"])  # nothing was published
    with Reader(bag) as reader:  # finalised: summary and footer written
        assert reader.message_count == 1  # the task message
    entry = json.loads((tmp_path / "d" / "index.json").read_text())["demos"][0]
    assert entry["status"] == "interrupted" and entry["stats"]["duration_s"] >= 0


@pytest.mark.ros
def test_bad_parameters_and_a_foreign_index_are_refused(ros_context: Any, tmp_path: Path) -> None:
    from mil_demo_recorder.dataset_index import DatasetIndexError
    from mil_sim.node_params import NodeConfigError

    with pytest.raises(NodeConfigError, match="flush_period_s"):
        _node(ros_context, tmp_path, flush_period_s=0.0)
    with pytest.raises(NodeConfigError, match="grid"):
        _node(ros_context, tmp_path, grid="fixed")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "index.json").write_text(json.dumps({"family": "placing", "demos": []}))
    with pytest.raises(DatasetIndexError, match="not a mil_demo_recorder index"):
        _node(ros_context, tmp_path)


@pytest.mark.ros
def test_the_node_recovers_killed_recordings_at_start(ros_context: Any, tmp_path: Path, episode: Any) -> None:
    import time

    rec = record_offline(tmp_path / "d" / "placing_train_0" / "demo_killed", episode, finish=False)
    while rec.queued:
        time.sleep(0.02)
    time.sleep(0.2)
    rec.abort()  # the file as a SIGKILL leaves it: whole chunks, no summary, metadata "recording"
    node = _node(ros_context, tmp_path)
    node.destroy_node()
    meta = db.read_task_metadata(tmp_path / "d" / "placing_train_0" / "demo_killed")
    assert meta["status"] == "recovered" and not meta["complete"] and meta["recovered"]["truncated"]
    entry = json.loads((tmp_path / "d" / "index.json").read_text())["demos"][0]
    assert (entry["path"], entry["status"]) == ("placing_train_0/demo_killed", "recovered")
