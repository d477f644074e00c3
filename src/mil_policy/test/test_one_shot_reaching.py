"""End to end, slow: meta-train MIL on reaching demos and beat the random policy one-shot on held-out colours.

The whole path a user takes, with the shipped 40x32-camera preset (config/train_reaching_40x32.yaml):
generate scripted-expert demo bags, meta-train, evaluate closed loop in the sim with the evaluation
command. About 22 minutes on 2 CPU cores (see docs/results.md), hence ``slow``: run it with
``./mil test -m slow``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from mil_policy import evaluate, train
from mil_policy.config import MilConfig
from mil_sim import generate

PRESET = Path(__file__).resolve().parents[3] / "config" / "train_reaching_40x32.yaml"
ITERATIONS = 12000


@pytest.mark.slow
@pytest.mark.timeout(3 * 3600)
def test_one_shot_reaching_beats_random_on_held_out_colours(tmp_path: Path) -> None:
    demos, run, results = tmp_path / "demos", tmp_path / "run", tmp_path / "eval"
    # The preset's camera (40x32, larger discs) for the demos; evaluation reads it from the run's config.
    family_config = json.dumps(MilConfig.load(PRESET).data.family_config)
    for split, tasks in (("train", 500), ("val", 50)):
        argv = ["--family", "reaching", "--split", split, "--tasks", str(tasks), "--demos-per-task", "4"]
        assert generate.main([*argv, "--workers", "2", "--out", str(demos), "--family-config", family_config]) == 0

    argv = ["--config", str(PRESET), "--demos", str(demos), "--out", str(run), "--iterations", str(ITERATIONS)]
    argv += ["--threads", "2", "--val-batches", "8"]
    assert train.main(argv) == 0

    # The demo is what the policy uses: adapted on its own task's demo, the held-out validation loss is
    # lower than adapted on another task's demo (the last four validations, to smooth their noise).
    with (run / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["val_loss"]]
    own = sum(float(r["val_loss"]) for r in rows[-4:])
    other = sum(float(r["val_other_demo"]) for r in rows[-4:])
    assert own < 0.9 * other, (own, other)

    argv = ["--checkpoint", str(run / "checkpoint"), "--method", "random", "--split", "test", "--tasks", "150"]
    argv += ["--trials", "2", "--seed", "1", "--workers", "2", "--out", str(results), "--no-progress"]
    assert evaluate.main(argv) == 0
    summary = {row["method"]: row for row in json.loads((results / "results.json").read_text())["summary"]}
    mil, random = summary["mil"], summary["random"]
    assert mil["trials"] == random["trials"] == 300
    # Clearly above random: the 95% intervals do not overlap.
    assert mil["ci_low"] > random["ci_high"], (mil, random)
