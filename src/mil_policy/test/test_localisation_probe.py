"""``probe_localisation``: landmarks of real demo scenes, a held-out split by task, and a trunk that learns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mil_policy import localisation_probe as probe
from mil_policy.config import MilConfig
from mil_sim.demo_bag import read_task_metadata
from mil_sim.families import get_family
from mil_sim.families.reaching import sample_layout

CONFIG = Path(__file__).resolve().parents[3] / "config" / "train_tiny.yaml"


def test_collect_reads_frame_zero_and_the_demo_scenes_landmarks(reaching_demos: Path) -> None:
    config = MilConfig.load(CONFIG)
    family = get_family("reaching")
    data = probe.collect(reaching_demos, family, config.data.horizon, max_demos=None, progress=False)
    assert data.images.shape == (12, 64, 80, 3) and data.points.shape == (12, 3, 2)
    assert data.names == ["object_0", "object_1", "object_2"]
    bags = probe.find_bags(reaching_demos, "reaching")
    for bag, points, floor in zip(bags, data.points, data.target_floor, strict=True):
        layout = sample_layout(int(read_task_metadata(bag)["trial_seed"]), family.config)
        expected = layout.positions[np.argsort(layout.positions[:, 1])]  # ordered by y, as the probe orders
        np.testing.assert_allclose(points, expected, atol=1e-6)
        assert floor == pytest.approx(np.linalg.norm(layout.positions[0] - layout.positions.mean(axis=0)))
    # --max-demos spreads the subset over all bags.
    few = probe.collect(reaching_demos, family, config.data.horizon, max_demos=4, progress=False)
    assert len(few.images) == 4 and len(set(few.task_ids)) == 4


def test_split_by_task_holds_whole_tasks_out() -> None:
    ids = [f"t{i // 3}" for i in range(30)]
    train, test = probe.split_by_task(ids, 0.2, seed=1)
    assert len(test) == 6 and len(train) == 24
    assert not {ids[i] for i in train} & {ids[i] for i in test}
    with pytest.raises(probe.DatasetError, match="at least 2 tasks"):
        probe.split_by_task(["a", "a"], 0.5, seed=0)


def test_the_trunk_learns_to_find_a_bright_square() -> None:
    """Synthetic scenes (a white square on grey at a random place): the probe's error must fall well
    below the constant guess's, which is what a real trunk shows on scenes it can see."""
    rng = np.random.default_rng(0)
    n, size = 120, 24
    images = np.full((n, size, size, 3), 90, np.uint8)
    points = np.zeros((n, 1, 2), np.float32)
    for i in range(n):
        r, c = rng.integers(2, size - 6, size=2)
        images[i, r : r + 4, c : c + 4] = 255
        points[i, 0] = [(c + 2) / size, (r + 2) / size]  # "metres": the square's centre in image fractions
    data = probe.ProbeData(images, points, ["object_0"], [f"t{i}" for i in range(n)], np.zeros(n))
    network = MilConfig.from_dict(
        {
            "network": {
                "image_width": size,
                "image_height": size,
                "state_dim": 0,
                "action_dim": 1,
                "conv": [{"filters": 4, "kernel": 3, "stride": 1}, {"filters": 4, "kernel": 3, "stride": 1}],
                "softmax_temperature": 0.2,
            }
        }
    ).network
    train, test = np.arange(96), np.arange(96, n)
    records = probe.train_probe(network, data, train, test, steps=200, lr=5e-3, eval_every=100, progress=False)
    assert [r.step for r in records] == [0, 100, 200]
    constant = records[-1].constant_error["object_0"]
    expected_constant = np.linalg.norm(points[test, 0] - points[train, 0].mean(axis=0), axis=1).mean()
    assert constant == pytest.approx(expected_constant, rel=1e-5)
    assert records[-1].error["object_0"] < 0.4 * constant


def test_cli_reports_writes_json_and_refuses_bad_input(reaching_demos: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "probe.json"
    argv = ["--config", str(CONFIG), "--demos", str(reaching_demos), "--steps", "4", "--eval-every", "2"]
    assert probe.main([*argv, "--json", str(out), "--test-fraction", "0.25"]) == 0
    report = capsys.readouterr().out
    assert "object_0" in report and "centroid" in report
    doc = json.loads(out.read_text())
    assert doc["landmarks"] == ["object_0", "object_1", "object_2"]
    assert doc["test_demos"] == 3 and doc["train_demos"] == 9  # one of the 4 tasks held out, all 3 demos
    assert [r["step"] for r in doc["records"]] == [0, 2, 4]
    assert 0 < doc["target_floor"] < 1
    assert probe.main([*argv, "--test-fraction", "1.5"]) == 2
    assert "--test-fraction" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert probe.main(["--config", str(CONFIG), "--demos", str(empty)]) == 2
    assert "no demo bags" in capsys.readouterr().err
