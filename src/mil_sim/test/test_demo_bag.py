"""The demo bag layout: real MCAP bags on disk, round trips, and every documented failure mode."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

import mil_sim.demo_bag as db
from mil_sim.core import Episode, Task
from mil_sim.demo_bag import DemoBagError, read_episode, read_task_metadata, write_episode

STATE_NAMES = tuple(f"s{i}" for i in range(9))


def make_episode(
    action_kind: str = "ee_twist", n: int = 24, m: int = 6, size: tuple[int, int] = (40, 30), seed: int = 0
) -> Episode:
    """A real Episode from random arrays, with times on the control grid exactly as rollout makes them."""
    rng = np.random.default_rng(seed)
    dt = 1.0 / 20.0
    j, w, h = 7, *size
    every = max(1, n // max(m, 1))
    adim = 6 if action_kind == "ee_twist" else 8
    quat = rng.normal(size=(n, 4))
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    return Episode(
        task=Task("reaching", "reaching/train/3", "train", {"target": "red_cube", "distractor_0": "blue_cube"}),
        trial_seed=12345,
        control_rate_hz=20.0,
        action_kind=action_kind,  # type: ignore[arg-type]
        times=np.asarray([i * dt for i in range(n)], dtype=np.float64),
        states=rng.normal(size=(n, len(STATE_NAMES))).astype(np.float32),
        ee_poses=np.concatenate([rng.normal(size=(n, 3)), quat], axis=1),
        joint_names=tuple(f"arm_joint_{i}" for i in range(j)),
        joint_positions=rng.normal(size=(n, j)),
        joint_velocities=rng.normal(size=(n, j)),
        gripper_open=rng.random(n) > 0.5,
        actions=rng.normal(size=(n, adim)).astype(np.float32),
        image_times=np.asarray([i * every * dt for i in range(m)], dtype=np.float64),
        images=rng.integers(0, 256, size=(m, h, w, 3), dtype=np.uint8),
        success=True,
        metadata={"expert_noise": 0.5, "retries": 2, "note": "unit test"},
    )


def assert_same_episode(a: Episode, b: Episode) -> None:
    for f in dataclasses.fields(Episode):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray), f.name
            assert (x.dtype, x.shape) == (y.dtype, y.shape), f.name
            assert np.array_equal(x, y), f.name
        else:
            assert x == y and type(x) is type(y), f.name


def rewrite(src: Path, dst: Path, transform: Callable[[str, Any], Any | None], custom_data: bool = True) -> Path:
    """Copy a bag message by message through rosbags, letting ``transform`` edit or drop (None) messages."""
    ts = db.typestore()
    with Reader(src) as reader, Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        if custom_data:
            writer.set_custom_data(db.CUSTOM_DATA_KEY, json.dumps(read_task_metadata(src)))
        conns = {}
        for conn, stamp, raw in reader.messages():
            msg = transform(conn.topic, ts.deserialize_cdr(raw, conn.msgtype))
            if msg is None:
                continue
            if conn.topic not in conns:
                conns[conn.topic] = writer.add_connection(conn.topic, conn.msgtype, typestore=ts)
            writer.write(conns[conn.topic], stamp, ts.serialize_cdr(msg, conn.msgtype))
    return dst


@pytest.fixture
def bag(tmp_path: Path) -> Path:
    return write_episode(tmp_path / "demo_0", make_episode(), STATE_NAMES)


@pytest.mark.parametrize(("action_kind", "compress"), [("ee_twist", True), ("joint_effort", False)])
def test_round_trip_is_identical(tmp_path: Path, action_kind: str, compress: bool) -> None:
    ep = make_episode(action_kind)
    path = write_episode(tmp_path / "x" / "demo_0", ep, STATE_NAMES, compress=compress)
    assert path == tmp_path / "x" / "demo_0"
    assert_same_episode(ep, read_episode(path))
    assert_same_episode(ep, read_episode(path / "demo_0.mcap"))  # a bare MCAP file reads the same


@pytest.mark.parametrize("action_kind", ["ee_twist", "joint_effort"])
def test_perturbed_demo_keeps_its_labels_beside_the_applied_actions(tmp_path: Path, action_kind: str) -> None:
    ep = make_episode(action_kind)
    ep.labels = (ep.actions + 0.5).astype(np.float32)
    path = write_episode(tmp_path / "demo_0", ep, STATE_NAMES)
    back = read_episode(path)
    assert_same_episode(ep, back)
    assert np.array_equal(back.targets, ep.labels) and read_task_metadata(path)["has_labels"] is True
    with Reader(path) as reader:  # the arm's command topic holds what was applied, never the label
        assert {c.topic for c in reader.connections} >= {db.ACTION_TOPICS[action_kind], db.LABEL_TOPICS[action_kind]}
    plain = read_episode(write_episode(tmp_path / "demo_1", make_episode(action_kind), STATE_NAMES))
    assert plain.labels is None and plain.targets is plain.actions


def test_missing_label_topic_of_a_perturbed_demo_is_named(tmp_path: Path) -> None:
    ep = make_episode()
    ep.labels = ep.actions.copy()
    path = write_episode(tmp_path / "demo_0", ep, STATE_NAMES)
    label_topic = db.LABEL_TOPICS["ee_twist"]
    broken = rewrite(path, tmp_path / "broken", lambda t, m: None if t == label_topic else m)
    with pytest.raises(DemoBagError, match=f"missing required topic {label_topic}"):
        read_episode(broken)


def test_labels_of_the_wrong_shape_are_rejected(tmp_path: Path) -> None:
    ep = make_episode()
    ep.labels = ep.actions[:, :3].copy()
    with pytest.raises(DemoBagError, match="labels"):
        write_episode(tmp_path / "demo_0", ep, STATE_NAMES)
    assert not (tmp_path / "demo_0").exists()


def test_round_trip_without_images(tmp_path: Path) -> None:
    ep = make_episode(m=0)
    assert ep.images.shape == (0, 30, 40, 3)
    assert_same_episode(ep, read_episode(write_episode(tmp_path / "d", ep)))


def test_off_grid_times_come_back_to_the_nanosecond(tmp_path: Path) -> None:
    ep = make_episode()
    ep.times = ep.times + np.linspace(0.0, 1e-3, len(ep.times)) + 1.23456789e-4
    back = read_episode(write_episode(tmp_path / "d", ep))
    np.testing.assert_allclose(back.times, ep.times, rtol=0, atol=0.5e-9)


def test_metadata_yaml_describes_an_mcap_v9_bag(bag: Path) -> None:
    assert sorted(p.name for p in bag.iterdir()) == ["demo_0.mcap", "metadata.yaml"]
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == 9 and info["storage_identifier"] == "mcap"
    assert info["relative_file_paths"] == ["demo_0.mcap"]
    topics = {t["topic_metadata"]["name"]: t for t in info["topics_with_message_count"]}
    expected = {
        db.TASK_TOPIC: ("std_msgs/msg/String", 1),
        db.IMAGE_TOPIC: ("sensor_msgs/msg/Image", 6),
        db.EE_POSE_TOPIC: ("geometry_msgs/msg/PoseStamped", 24),
        db.EE_CMD_VEL_TOPIC: ("geometry_msgs/msg/TwistStamped", 24),
        db.JOINT_STATES_TOPIC: ("sensor_msgs/msg/JointState", 24),
        db.GRIPPER_OPEN_TOPIC: ("std_msgs/msg/Bool", 24),
        db.ROBOT_STATE_TOPIC: ("std_msgs/msg/Float32MultiArray", 24),
    }
    assert {k: (t["topic_metadata"]["type"], t["message_count"]) for k, t in topics.items()} == expected
    for t in topics.values():
        (qos,) = t["topic_metadata"]["offered_qos_profiles"]
        assert (qos["reliability"], qos["durability"], qos["history"]) == (
            "reliable",
            "volatile",
            "keep_last",
        )
        assert t["topic_metadata"]["type_description_hash"].startswith("RIHS01_")
    task = json.loads(info["custom_data"]["mil.task"])
    assert task == read_task_metadata(bag)
    assert task["task_id"] == "reaching/train/3" and task["source"] == "sim_expert"
    assert task["trial_seed"] == 12345 and task["success"] is True and task["control_rate_hz"] == 20.0


def test_messages_follow_the_documented_layout(tmp_path: Path) -> None:
    ep = make_episode()
    start = 1_750_000_000_123_456_789
    bag = write_episode(tmp_path / "d", ep, STATE_NAMES, start_ns=start)
    ts = db.typestore()
    with Reader(bag) as reader:
        msgs: dict[str, list] = {}
        all_stamps = []
        for conn, stamp, raw in reader.messages():
            all_stamps.append(stamp)
            msgs.setdefault(conn.topic, []).append((stamp, ts.deserialize_cdr(raw, conn.msgtype)))
    (t0, task_msg), *_ = msgs[db.TASK_TOPIC]
    assert t0 == start and json.loads(task_msg.data)["family"] == "reaching"
    stamp, img = msgs[db.IMAGE_TOPIC][1]
    assert (img.encoding, img.width, img.height, img.step) == ("rgb8", 40, 30, 120)
    assert stamp == start + round(ep.image_times[1] * 1e9)
    assert img.header.stamp.sec * 10**9 + img.header.stamp.nanosec == stamp
    stamp, pose = msgs[db.EE_POSE_TOPIC][3]
    assert pose.header.frame_id == "base_link" and stamp == start + round(ep.times[3] * 1e9)
    assert pose.pose.orientation.w == ep.ee_poses[3, 3] and pose.pose.position.z == ep.ee_poses[3, 2]
    _, twist = msgs[db.EE_CMD_VEL_TOPIC][3]
    assert twist.twist.angular.x == float(ep.actions[3, 3])
    _, state = msgs[db.ROBOT_STATE_TOPIC][0]
    assert state.layout.dim[0].label == ",".join(STATE_NAMES) and state.layout.dim[0].size == 9
    assert all_stamps == sorted(all_stamps)  # written in time order, as ros2 bag play expects


def test_overwrite_is_refused_and_nothing_is_left_behind(bag: Path) -> None:
    before = (bag / "demo_0.mcap").read_bytes()
    with pytest.raises(FileExistsError, match="not overwriting"):
        write_episode(bag, make_episode(seed=1))
    assert (bag / "demo_0.mcap").read_bytes() == before
    assert [p.name for p in bag.parent.iterdir()] == ["demo_0"]


def test_interrupted_write_leaves_no_bag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(path: Path, *args: object) -> None:
        path.mkdir()
        (path / "demo_0.mcap").write_bytes(b"\x89MCAP0\r\n half")
        raise KeyboardInterrupt

    monkeypatch.setattr(db, "_write_bag", crash)
    with pytest.raises(KeyboardInterrupt):
        write_episode(tmp_path / "demo_0", make_episode())
    assert list(tmp_path.iterdir()) == []


def test_bad_episodes_are_rejected_before_writing(tmp_path: Path) -> None:
    ep = make_episode()
    bad = [
        (dataclasses.replace(ep, states=ep.states.astype(np.float64)), "states must be a 2-D float32"),
        (dataclasses.replace(ep, actions=ep.actions[:-1]), "actions must be"),
        (dataclasses.replace(ep, images=ep.images[..., 0]), "images must be an \\(M, H, W, 3\\)"),
        (dataclasses.replace(ep, image_times=ep.image_times[:-1]), "image_times"),
        (dataclasses.replace(ep, times=ep.times[::-1].copy()), "strictly increasing"),
        (dataclasses.replace(ep, metadata={"x": object()}), "JSON-serializable"),
    ]
    nan_poses = ep.ee_poses.copy()
    nan_poses[2, 0] = np.nan
    bad.append((dataclasses.replace(ep, ee_poses=nan_poses), "NaN"))
    for episode, match in bad:
        with pytest.raises(DemoBagError, match=match):
            write_episode(tmp_path / "d", episode, STATE_NAMES)
    with pytest.raises(DemoBagError, match="state_names"):
        write_episode(tmp_path / "d", ep, STATE_NAMES[:3])
    assert list(tmp_path.iterdir()) == []


def test_missing_path_and_non_bags(tmp_path: Path) -> None:
    with pytest.raises(DemoBagError, match="does not exist"):
        read_episode(tmp_path / "nope")
    with pytest.raises(DemoBagError, match="does not exist"):
        read_task_metadata(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DemoBagError, match=r"no metadata\.yaml"):
        read_episode(tmp_path / "plain")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DemoBagError, match="not a rosbag2 bag"):
        read_episode(tmp_path / "notes.txt")
    assert issubclass(DemoBagError, ValueError)


@pytest.mark.parametrize("damage", ["truncate", "random", "empty", "yaml"])
def test_corrupt_bag(bag: Path, damage: str) -> None:
    mcap = bag / "demo_0.mcap"
    data = mcap.read_bytes()
    if damage == "truncate":
        mcap.write_bytes(data[: len(data) // 2])
    elif damage == "random":
        mcap.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif damage == "empty":
        mcap.write_bytes(b"")
    else:
        (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    with pytest.raises(DemoBagError, match="demo_0"):
        read_episode(bag)


@pytest.mark.parametrize("topic", [db.JOINT_STATES_TOPIC, db.EE_CMD_VEL_TOPIC, db.IMAGE_TOPIC, db.TASK_TOPIC])
def test_missing_topic_is_named(bag: Path, tmp_path: Path, topic: str) -> None:
    broken = rewrite(bag, tmp_path / "broken", lambda t, m: None if t == topic else m)
    with pytest.raises(DemoBagError, match=f"missing required topic {topic}"):
        read_episode(broken)


def test_task_metadata_falls_back_to_the_task_topic(bag: Path, tmp_path: Path) -> None:
    copy = rewrite(bag, tmp_path / "copy", lambda t, m: m, custom_data=False)
    info = yaml.safe_load((copy / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert not info.get("custom_data")
    assert read_task_metadata(copy) == read_task_metadata(bag)
    assert_same_episode(read_episode(bag), read_episode(copy))


def _edit_nth(topic: str, n: int, edit: Callable[[Any], Any]) -> Callable[[str, Any], Any]:
    seen = {"count": 0}

    def transform(t: str, m: Any) -> Any:
        if t == topic:
            seen["count"] += 1
            if seen["count"] == n + 1:
                return edit(m)
        return m

    return transform


def test_inconsistent_image_size(bag: Path, tmp_path: Path) -> None:
    def shrink(m: Any) -> Any:
        m.width, m.step, m.data = 39, 117, m.data[: 117 * 30]
        return m

    broken = rewrite(bag, tmp_path / "b", _edit_nth(db.IMAGE_TOPIC, 2, shrink))
    with pytest.raises(DemoBagError, match="image 2 is 39x30, expected 40x30"):
        read_episode(broken)


def test_bad_image_encoding_and_data(bag: Path, tmp_path: Path) -> None:
    def yuv(m: Any) -> Any:
        m.encoding = "yuv422"
        return m

    def short(m: Any) -> Any:
        m.data = m.data[:-5]
        return m

    with pytest.raises(DemoBagError, match="unsupported image encoding 'yuv422'"):
        read_episode(rewrite(bag, tmp_path / "a", _edit_nth(db.IMAGE_TOPIC, 0, yuv)))
    with pytest.raises(DemoBagError, match=r"image 1 .*bytes, expected"):
        read_episode(rewrite(bag, tmp_path / "b", _edit_nth(db.IMAGE_TOPIC, 1, short)))


def test_nan_pose(bag: Path, tmp_path: Path) -> None:
    def nan(m: Any) -> Any:
        m.pose.position.y = float("nan")
        return m

    with pytest.raises(DemoBagError, match="/ee_pose contains NaN"):
        read_episode(rewrite(bag, tmp_path / "b", _edit_nth(db.EE_POSE_TOPIC, 5, nan)))


def test_dropped_step_message(bag: Path, tmp_path: Path) -> None:
    broken = rewrite(bag, tmp_path / "b", _edit_nth(db.GRIPPER_OPEN_TOPIC, 3, lambda m: None))
    with pytest.raises(DemoBagError, match="/gripper/open has 23 messages, expected 24"):
        read_episode(broken)


def test_compression_shrinks_rendered_scenes(tmp_path: Path) -> None:
    ep = make_episode(size=(160, 120))
    ep.images[:] = 90  # flat colours, like the sim's renders
    small = write_episode(tmp_path / "z", ep) / "z.mcap"
    big = write_episode(tmp_path / "raw", ep, compress=False) / "raw.mcap"
    assert small.stat().st_size * 5 < big.stat().st_size
    assert_same_episode(read_episode(small.parent), read_episode(big.parent))
