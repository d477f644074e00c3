"""``build_dataset`` on teleop recordings, sim demos and broken bags: keeps the good, names the bad."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from teleop_stream import expert_episode, record_offline

from mil_demo_recorder.build_dataset import main
from mil_policy.config import DataConfig
from mil_policy.dataset import load_dataset
from mil_sim import demo_bag as db
from mil_sim.families import get_family

TEMPLATE = "placing/train/0"


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 recorded demos of task A, 2 sim demos of task B, and 3 broken recordings."""
    root = tmp_path_factory.mktemp("mixed")
    episode = expert_episode(TEMPLATE, 3, steps=40)
    for k in range(2):
        record_offline(
            root / "teleop_a" / f"demo_{k}",
            episode,
            task_id="placing/train/1",
            start_ns=1_700_000_000 * 10**9 + k * 10**10,
        )
        db.write_episode(
            root / "sim_b" / f"demo_{k}",
            episode_as("placing/train/2", episode),
            get_family("placing").state_names,
        )
    # Truncated: the recorder was killed; the MCAP file is cut in the middle of a chunk.
    record_offline(root / "broken" / "demo_truncated", episode, task_id="placing/train/3")
    mcap = db.raw_mcap_path(root / "broken" / "demo_truncated")
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    # Missing topic: no end-effector commands were recorded (wrong command_topic, say).
    record_offline(root / "broken" / "demo_no_commands", episode, task_id="placing/train/3", skip=("command",))
    # NaN pose: a broken tracker.

    def nan_pose(key: str, msg: Any) -> Any:
        if key == "pose" and msg.header.stamp.nanosec // 50_000_000 == 7:
            msg.pose.position.x = math.nan
        return msg

    record_offline(root / "broken" / "demo_nan_pose", episode, task_id="placing/train/3", mutate=nan_pose)
    return root


def episode_as(task_id: str, episode: Any) -> Any:
    import dataclasses

    task = dataclasses.replace(episode.task, task_id=task_id)
    return dataclasses.replace(episode, task=task, metadata={})


def test_cli_keeps_good_demos_and_reports_each_broken_one(
    demos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.json"
    code = main(
        [
            str(demos),
            "--horizon",
            "30",
            "--cache",
            str(tmp_path / "cache"),
            "--report",
            str(report),
            "--quiet",
        ]
    )
    assert code == 0
    rep = json.loads(report.read_text())
    assert rep["num_demos"] == 4 and rep["num_tasks"] == 2
    assert rep["demos_per_task"] == {"placing/train/1": 2, "placing/train/2": 2}
    reasons = {s["path"]: s["reason"] for s in rep["skipped"]}
    assert set(reasons) == {"broken/demo_truncated", "broken/demo_no_commands", "broken/demo_nan_pose"}
    assert "incomplete recording" in reasons["broken/demo_truncated"]
    assert "missing required topic /ee_cmd_vel" in reasons["broken/demo_no_commands"]
    assert "NaN" in reasons["broken/demo_nan_pose"]
    out = capsys.readouterr().out
    assert "4 demos of 2 tasks" in out and "skipped 3 demos" in out and "broken/demo_nan_pose" in out
    # Strict mode turns skipped demos into a failing exit status (for CI-style checks of a session).
    assert main([str(demos), "--cache", str(tmp_path / "cache"), "--quiet", "--strict"]) == 3


def test_the_cache_is_what_training_loads(demos: Path, tmp_path: Path) -> None:
    assert main([str(demos), "--cache", str(tmp_path / "cache"), "--quiet"]) == 0
    ds = load_dataset(demos, DataConfig(family="placing", horizon=30), cache_root=tmp_path / "cache", progress=False)
    assert ds.images.shape[1:] == (30, 90, 100, 3) and ds.states.shape[2] == 11
    assert isinstance(ds.images, np.memmap)
    recorded = [i for i, p in enumerate(ds.demo_paths) if p.startswith("teleop_a")]
    simulated = [i for i, p in enumerate(ds.demo_paths) if p.startswith("sim_b")]
    # The same expert rollout, recorded over the teleop path or written by the generator, gives the
    # same training arrays (the raw streams land back on the control grid).
    np.testing.assert_allclose(ds.actions[recorded[0]], ds.actions[simulated[0]], atol=1e-6)
    np.testing.assert_array_equal(ds.images[recorded[0]], ds.images[simulated[0]])


def test_no_usable_demo_is_an_error(tmp_path: Path, demos: Path) -> None:
    shutil.copytree(demos / "broken", tmp_path / "only_broken" / "broken")
    assert main([str(tmp_path / "only_broken"), "--quiet", "--cache", str(tmp_path / "c")]) == 1
