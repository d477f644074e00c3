"""The ``train`` CLI end to end on real reaching demos with the tiny config (a few iterations each)."""

from __future__ import annotations

import csv
import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from mil_policy import train
from mil_policy.checkpoint import read_checkpoint, read_trainer_state
from mil_policy.config import MilConfig
from mil_policy.dataset import MetaBatchSampler, load_dataset, other_task_demos
from mil_policy.distributed import DistContext
from mil_policy.methods import build_method

CONFIG = Path(__file__).resolve().parents[3] / "config" / "train_tiny.yaml"


def run(reaching_demos: Path, out: Path, *extra: str) -> int:
    return train.main(
        ["--config", str(CONFIG), "--demos", str(reaching_demos), "--out", str(out), "--threads", "1", *extra]
    )


def metrics(out: Path) -> list[dict[str, str]]:
    with (out / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_trains_end_to_end_and_writes_everything(reaching_demos: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run(reaching_demos, out, "--iterations", "4") == 0
    rows = metrics(out)
    assert [r["iteration"] for r in rows] == ["1", "2", "3", "4"]
    assert all(float(r["train_loss"]) > 0 for r in rows)
    assert [bool(r["val_loss"]) for r in rows] == [False, True, False, True]  # val_every: 2
    assert float(rows[-1]["seconds"]) >= float(rows[0]["seconds"]) > 0
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert (out / "training_curve.png").stat().st_size > 1000
    _weights, config, meta = read_checkpoint(out / "checkpoint")
    assert meta["iteration"] == 4 and config.train.iterations == 4 and config.method == "mil"
    assert meta["dataset"]["image_size"] == [80, 64]
    _, counters = read_trainer_state(out / "checkpoint")
    assert counters["iteration"] == 4
    _, _, best = read_checkpoint(out / "best")
    best_csv = min(float(r["val_loss"]) for r in rows if r["val_loss"])
    assert best["val_loss"] == pytest.approx(best_csv, rel=1e-5)
    assert not (out / "best" / "trainer_state.json").exists()
    # The run directory is protected: a second run needs --resume.
    assert run(reaching_demos, out, "--iterations", "4") == 2


def test_resume_continues_exactly_like_an_uninterrupted_run(reaching_demos: Path, tmp_path: Path) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    recolour = ("--set", "data.colour_augmentation=true")  # its random stream is restored too
    assert run(reaching_demos, straight, "--iterations", "5", *recolour) == 0
    assert run(reaching_demos, resumed, "--iterations", "3", *recolour) == 0
    assert (
        train.main(
            ["--demos", str(reaching_demos), "--out", str(resumed), "--resume", "--iterations", "5", "--threads", "1"]
        )
        == 0
    )  # config from the checkpoint
    assert [r["iteration"] for r in metrics(resumed)] == ["1", "2", "3", "4", "5"]
    a, _, _meta = read_checkpoint(straight / "checkpoint")
    b, _, meta_b = read_checkpoint(resumed / "checkpoint")
    assert meta_b["iteration"] == 5
    for k in a:  # optimiser moments, sampler RNGs and step count all restored
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert [r["train_loss"] for r in metrics(straight)] == [r["train_loss"] for r in metrics(resumed)]


def test_cosine_meta_lr_schedule_drives_the_optimiser(
    reaching_demos: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    schedule = ["--set", "maml.meta_lr_schedule=cosine", "--set", "maml.meta_lr_decay_from=1"]
    assert run(reaching_demos, out, "--iterations", "4", *schedule, "--set", "maml.meta_lr_final=0.1") == 0
    assert "then a cosine down to" in capsys.readouterr().err
    _, config, _ = read_checkpoint(out / "checkpoint")
    _, counters = read_trainer_state(out / "checkpoint")
    last = counters["optimizer"]["param_groups"][0]["lr"]  # the rate of the 4th (last) step
    assert last == pytest.approx(config.maml.meta_lr_at(3, 4))
    assert last < 0.5 * config.maml.meta_lr


def test_ctrl_c_saves_a_checkpoint_and_resume_picks_it_up(
    reaching_demos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    real_step = train.meta_step
    calls = {"n": 0}

    def interrupted_step(*args: object, **kwargs: object) -> tuple[float, bool]:
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-iteration, as a real Ctrl-C would
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train, "meta_step", interrupted_step)
    before = signal.getsignal(signal.SIGINT)
    assert run(reaching_demos, out, "--iterations", "6") == train.EXIT_INTERRUPTED
    assert read_checkpoint(out / "checkpoint")[2]["iteration"] == 2  # the iteration in flight completes
    assert signal.getsignal(signal.SIGINT) is before
    monkeypatch.setattr(train, "meta_step", real_step)
    assert run(reaching_demos, out, "--iterations", "4", "--resume") == 0
    assert read_checkpoint(out / "checkpoint")[2]["iteration"] == 4
    assert [r["iteration"] for r in metrics(out)] == ["1", "2", "3", "4"]


def test_init_weights_starts_a_new_run_from_another_runs_weights(
    reaching_demos: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source, out = tmp_path / "source", tmp_path / "run"
    assert run(reaching_demos, source, "--iterations", "3") == 0
    assert run(reaching_demos, out, "--iterations", "0", "--init-weights", str(source / "checkpoint")) == 0
    a, _, _ = read_checkpoint(source / "checkpoint")
    b, _, meta = read_checkpoint(out / "checkpoint")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert meta["iteration"] == 0
    assert meta["init_weights"] == {"path": str(source / "checkpoint"), "iteration": 3}
    _, counters = read_trainer_state(out / "checkpoint")
    assert counters["optimizer"]["scalars"] == {}  # a fresh optimiser: no step taken, no moments
    # Trained on and resumed, the run still says where its weights came from.
    assert run(reaching_demos, out, "--iterations", "2", "--resume") == 0
    b2, _, meta = read_checkpoint(out / "checkpoint")
    assert meta["iteration"] == 2 and meta["init_weights"]["iteration"] == 3
    assert any(not torch.equal(a[k], b2[k]) for k in a)
    capsys.readouterr()
    # Onto an existing run, or from a checkpoint of another network: refused, nothing written.
    args = ("--init-weights", str(source / "checkpoint"))
    assert run(reaching_demos, out, "--iterations", "4", "--resume", *args) == 2
    assert "--init-weights starts a new run" in capsys.readouterr().err
    assert run(reaching_demos, tmp_path / "other", "--set", "network.fc=[8]", *args) == 2
    assert "different method/network config" in capsys.readouterr().err
    assert not (tmp_path / "other" / "checkpoint").exists()
    assert run(reaching_demos, tmp_path / "other", "--init-weights", str(tmp_path / "missing")) == 2
    assert capsys.readouterr().err.count("train: error:") == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "network.image_width=100"], "images are 80x64 .* network expects 100x64"),
        (["--set", "network.state_dim=11"], "states have 4 dims but network.state_dim is 11"),
        (["--set", "network.action_dim=7"], "actions have 2 dims but network.action_dim is 7"),
        (["--set", "maml.meta_batch=9"], "maml.meta_batch=9 needs 9 distinct train tasks"),
        (["--set", "maml.nope=1"], "bad config"),
        (["--set", "maml.inner_steps"], "KEY=VALUE"),
    ],
)
def test_clear_errors(
    reaching_demos: Path, tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], message: str
) -> None:
    assert run(reaching_demos, tmp_path / "run", *extra) == 2
    err = capsys.readouterr().err
    assert err.count("train: error:") == 1
    assert re.search(message, err), err
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_validation_also_scores_each_task_adapted_on_another_tasks_demo(reaching_demos: Path) -> None:
    """val_other_demo: the same held-out demos, each task adapted on the previous task's demo instead."""
    config = MilConfig.load(CONFIG)
    dataset = load_dataset(reaching_demos, config.data, progress=False)
    sampler = MetaBatchSampler(dataset, range(dataset.num_tasks), meta_batch=3, shots=1, frames_per_demo=5, seed=0)
    idx = sampler.sample_indices()
    other = other_task_demos(idx, shots=1)
    assert list(other.demos[:, 0]) == [idx.demos[2, 0], idx.demos[0, 0], idx.demos[1, 0]]
    assert (other.demos[:, 1] == idx.demos[:, 1]).all()  # evaluation demos untouched
    assert (other.frames[:, 0] == idx.frames[[2, 0, 1], 0]).all()
    for d, t in zip(other.demos[:, 0], np.roll(idx.tasks, 1), strict=True):
        assert dataset.task_index[d] == t  # the adaptation demo belongs to another task
    torch.manual_seed(0)
    method = build_method(config)
    val, val_other = train.validation_loss(method, sampler, batches=2, dist_ctx=DistContext())
    assert val > 0 and val_other is not None and val_other > 0 and val_other != val
    assert method.module.training  # validation leaves the module in training mode
    one_task = MetaBatchSampler(dataset, range(dataset.num_tasks), meta_batch=1, shots=1, seed=0)
    assert train.validation_loss(method, one_task, batches=1, dist_ctx=DistContext())[1] is None
