"""Replay publishes a recorded demo over DDS in order and on time; score_replay scores a policy on demos."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from teleop_stream import expert_episode, record_offline

from mil_demo_recorder.replay import ROBOT_TOPICS, Replayer, open_bag, restamp
from mil_demo_recorder.score_replay import action_scores
from mil_demo_recorder.score_replay import main as score_main
from mil_sim import demo_bag as db


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 tasks x 2 recorded demos of a 2 s expert rollout (the same motion relabelled: plumbing only)."""
    root = tmp_path_factory.mktemp("replay")
    episode = expert_episode("placing/train/0", 3, steps=40)
    for t in (1, 2):
        for k in range(2):
            record_offline(
                root / f"task{t}" / f"demo_{k}",
                episode,
                task_id=f"placing/train/{t}",
                start_ns=1_700_000_000 * 10**9 + k * 10**10,
            )
    return root


@pytest.mark.ros
def test_replay_publishes_every_message_in_order_with_original_timing(bags: Path, domain_id: int) -> None:
    import rclpy
    from geometry_msgs.msg import PoseStamped, TwistStamped
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    bag = open_bag(bags / "task1" / "demo_0")
    counts = {t: 0 for t in bag.topics}
    for topic, _, _ in bag.messages():
        counts[topic] += 1
    contexts = [Context(), Context()]
    for c in contexts:
        rclpy.init(context=c, domain_id=domain_id)
    try:
        player = rclpy.create_node("replay", context=contexts[0])
        probe = rclpy.create_node("probe", context=contexts[1])
        got: dict[str, list[tuple[float, Any]]] = {"image": [], "pose": [], "twist": []}
        subs = [
            probe.create_subscription(
                Image,
                ROBOT_TOPICS[db.IMAGE_TOPIC],
                lambda m: got["image"].append((time.monotonic(), m)),
                qos_profile_sensor_data,
            ),
            probe.create_subscription(
                PoseStamped,
                ROBOT_TOPICS[db.EE_POSE_TOPIC],
                lambda m: got["pose"].append((time.monotonic(), m)),
                100,
            ),
            probe.create_subscription(
                TwistStamped, db.EE_CMD_VEL_TOPIC, lambda m: got["twist"].append((time.monotonic(), m)), 100
            ),
        ]
        replayer = Replayer(
            player,
            bag,
            rate=2.0,
            remap=ROBOT_TOPICS,
            topics=[db.IMAGE_TOPIC, db.EE_POSE_TOPIC, db.EE_CMD_VEL_TOPIC],
        )
        executor = SingleThreadedExecutor(context=contexts[1])
        executor.add_node(probe)
        # Discovery has two sides: a reliable writer that has matched the reader still loses what it sends
        # before the reader has matched the writer (volatile readers drop unknown writers' samples; seen on
        # a loaded CI machine as 31 of 40 poses). Here both sides are visible, so wait for both.
        end = time.monotonic() + 15.0
        while time.monotonic() < end and not (
            all(s.get_publisher_count() > 0 for s in subs)
            and all(p.get_subscription_count() > 0 for p in replayer.publishers.values())
        ):
            executor.spin_once(timeout_sec=0.05)
        thread = threading.Thread(target=lambda: (replayer.wait_for_subscribers(15.0), replayer.run()))
        thread.start()
        end = time.monotonic() + 30.0

        def pending() -> bool:
            return thread.is_alive() or min(len(got["pose"]), len(got["twist"])) < counts[db.EE_POSE_TOPIC]

        while pending() and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        thread.join(timeout=5.0)
        assert replayer.counts == {db.IMAGE_TOPIC: 20, db.EE_POSE_TOPIC: 40, db.EE_CMD_VEL_TOPIC: 40}
        assert len(got["pose"]) == 40 and len(got["twist"]) == 40 and len(got["image"]) >= 18
        for key in got:
            stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in got[key]]
            assert stamps == sorted(stamps), f"{key} out of order"
        # Original timing at rate 2: 40 poses over 1.95 s of recording are spread over about 0.98 s, not
        # sent in one burst. Only the lower bound is checked: a loaded machine may deliver them later.
        span = got["pose"][-1][0] - got["pose"][0][0]
        assert span > 0.6, span
        executor.shutdown()
        player.destroy_node()
        probe.destroy_node()
    finally:
        for c in contexts:
            rclpy.shutdown(context=c)


def test_replay_reads_a_killed_recording_and_restamps(tmp_path: Path) -> None:
    rec = record_offline(tmp_path / "t" / "demo_killed", expert_episode("placing/train/0", 3, steps=40), finish=False)
    while rec.queued:
        time.sleep(0.02)
    time.sleep(0.2)
    rec.abort()
    bag = open_bag(tmp_path / "t" / "demo_killed")
    assert db.EE_POSE_TOPIC in bag.topics and sum(1 for _ in bag.messages()) > 50
    data = next(d for t, _, d in bag.messages() if t == db.EE_POSE_TOPIC)
    msg = db.typestore().deserialize_cdr(restamp(data, 5 * 10**9 + 7), "geometry_msgs/msg/PoseStamped")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (5, 7)


def test_action_scores() -> None:
    import numpy as np

    a = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 0]], dtype=np.float32)
    mse, cos = action_scores(a, a)
    assert mse == 0.0 and cos == pytest.approx(1.0)
    mse, cos = action_scores(-a, a)
    assert cos == pytest.approx(-1.0) and mse == pytest.approx(8 / 9)


def test_score_replay_writes_a_table_and_plot(bags: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mil_policy.checkpoint import save_checkpoint
    from mil_policy.config import ConvLayer, DataConfig, MamlConfig, MilConfig, NetworkConfig
    from mil_policy.network import PolicyNetwork

    torch.manual_seed(0)
    cfg = MilConfig(
        network=NetworkConfig(
            conv=[ConvLayer(4, 3, 2), ConvLayer(4, 3, 2)], fc=[16], bias_transform_dim=4, predict_target=True
        ),
        maml=MamlConfig(inner_steps=1, meta_batch=2),
        data=DataConfig(family="placing", horizon=30),
    )
    save_checkpoint(tmp_path / "ckpt", PolicyNetwork(cfg.network).state_dict(), cfg)
    out = tmp_path / "scores"
    assert score_main([str(bags), "--checkpoint", str(tmp_path / "ckpt"), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "placing/train/1" in table and "placing/train/2" in table and "MSE" in table
    doc = json.loads((out / "scores.json").read_text())
    assert [t["task_id"] for t in doc["tasks"]] == ["placing/train/1", "placing/train/2"]
    for task in doc["tasks"]:
        assert task["adapt_demo"].endswith("demo_0") and [d["path"] for d in task["demos"]] == [
            task["adapt_demo"].replace("demo_0", "demo_1")
        ]
        assert task["mse"] >= 0 and -1 <= task["cosine"] <= 1 and task["demos"][0]["steps"] == 30
    assert (out / "scores.png").stat().st_size > 1000
