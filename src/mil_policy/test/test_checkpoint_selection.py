"""Snapshots during training and ``select_checkpoint`` on a real tiny run, rolled out in the real sim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mil_policy import train
from mil_policy.checkpoint import read_checkpoint
from mil_policy.checkpoint_selection import (
    BEST_SUCCESS,
    Candidate,
    Scored,
    SelectionError,
    choose,
    find_candidates,
    main,
)
from mil_policy.compare_evals import load_trials
from mil_policy.eval_report import ConditionSummary

CONFIG = Path(__file__).resolve().parents[3] / "config" / "train_tiny.yaml"
SHORT = json.dumps({"episode_steps": 20})  # 1-s reaching episodes keep each rollout short


@pytest.fixture(scope="module")
def tiny_run(reaching_demos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("selection") / "run"
    argv = ["--config", str(CONFIG), "--demos", str(reaching_demos), "--out", str(out), "--threads", "1"]
    assert train.main([*argv, "--iterations", "4", "--set", "train.snapshot_every=2"]) == 0
    return out


def test_training_keeps_weight_snapshots(tiny_run: Path) -> None:
    snapshots = sorted(p.name for p in (tiny_run / "snapshots").iterdir())
    assert snapshots == ["iter_000002", "iter_000004"]
    for name in snapshots:
        assert not (tiny_run / "snapshots" / name / "trainer_state.json").exists()  # weights only
    w2, _, meta2 = read_checkpoint(tiny_run / "snapshots" / "iter_000002")
    w4, _, meta4 = read_checkpoint(tiny_run / "snapshots" / "iter_000004")
    last, _, meta_last = read_checkpoint(tiny_run / "checkpoint")
    assert (meta2["iteration"], meta4["iteration"], meta_last["iteration"]) == (2, 4, 4)
    for k in last:
        torch.testing.assert_close(w4[k], last[k])  # the last snapshot is the final weights
    assert any(not torch.equal(w2[k], w4[k]) for k in w2)  # and the first is not


def test_resume_drops_snapshots_of_the_lost_part_of_a_run(reaching_demos: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["--demos", str(reaching_demos), "--out", str(out), "--threads", "1"]
    assert train.main([*argv, "--config", str(CONFIG), "--iterations", "2", "--set", "train.snapshot_every=1"]) == 0
    stale = out / "snapshots" / "iter_000007"  # as if written after the checkpoint, then lost in a crash
    stale.mkdir()
    assert train.main([*argv, "--resume", "--iterations", "3"]) == 0
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["iter_000001", "iter_000002", "iter_000003"]


def test_candidates_merge_checkpoints_that_a_snapshot_already_holds(tiny_run: Path) -> None:
    cands = find_candidates(tiny_run)
    assert [c.iteration for c in cands] == [2, 4]  # best/ and checkpoint/ are iterations 2 or 4: no extras
    _, _, best = read_checkpoint(tiny_run / "best")
    roles = {c.iteration: c.roles for c in cands}
    assert "checkpoint" in roles[4] and "best" in roles[int(best["iteration"])]
    assert [c.iteration for c in find_candidates(tiny_run, min_iteration=3)] == [4]
    thinned = find_candidates(tiny_run, every=4)  # iter_000002 left out unless best/ holds iteration 2
    assert [c.name for c in thinned][-1] == "iter_000004"
    assert [c.iteration for c in thinned] == ([2, 4] if best["iteration"] == 2 else [4])
    with pytest.raises(SelectionError, match="nothing to select"):
        find_candidates(tiny_run, min_iteration=5)


def _scored(iteration: int, successes: int, chose: int | None, median: float | None) -> Scored:
    summary = ConditionSummary(f"c{iteration}", "mil", 1, "full", successes, 10, successes / 10, 0, 1, chose, median)
    return Scored(Candidate(f"iter_{iteration:06d}", Path(), iteration), summary)


def test_choose_ranks_success_then_demo_read_then_precision_then_training() -> None:
    assert choose([_scored(1, 2, 9, 0.01), _scored(2, 3, 1, 0.5)]).candidate.iteration == 2
    assert choose([_scored(1, 3, 6, 0.5), _scored(2, 3, 5, 0.01)]).candidate.iteration == 1
    assert choose([_scored(1, 3, 5, 0.04), _scored(2, 3, 5, 0.05)]).candidate.iteration == 1
    assert choose([_scored(1, 3, 5, 0.04), _scored(2, 3, 5, 0.04)]).candidate.iteration == 2
    assert choose([_scored(1, 0, None, None), _scored(2, 0, None, None)]).candidate.iteration == 2


def test_select_end_to_end(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tiny_run.parent / "sel"
    argv = [str(tiny_run), "--tasks", "2", "--trials", "2", "--family-config", SHORT, "--out", str(out)]
    assert main([*argv, "--no-progress", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "chosen: iter_" in printed and "95% CI" in printed and "--split test" in printed
    doc = json.loads((out / "results.json").read_text())
    selection = doc["selection"]
    assert [c["iteration"] for c in selection["candidates"]] == [2, 4]
    assert all(c["trials"] == 4 for c in selection["candidates"])
    assert {t["task_id"].split("/")[1] for t in doc["trials"]} == {"val"}  # never the test split
    assert len(load_trials(out)) == 8  # compare_evals reads it
    assert (out / "selection.png").stat().st_size > 5000
    chosen, _, meta = read_checkpoint(tiny_run / BEST_SUCCESS)
    assert meta["selection"]["chosen"] == selection["chosen"]
    assert meta["iteration"] == selection["iteration"]
    source, _, _ = read_checkpoint(tiny_run / "snapshots" / selection["chosen"])
    for k in source:
        torch.testing.assert_close(chosen[k], source[k])
    best = max(selection["candidates"], key=lambda c: c["successes"])
    assert selection["successes"] == best["successes"]


def test_clear_errors(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def error(argv: list[str]) -> str:
        assert main([*argv, "--no-progress"]) == 2
        return capsys.readouterr().err

    assert "test split" in error([str(tiny_run), "--split", "test"])
    assert "no such run" in error([str(tmp_path / "missing")])
    (tmp_path / "empty").mkdir()
    assert "snapshot_every" in error([str(tmp_path / "empty")])
    assert "at least 1" in error([str(tiny_run), "--tasks", "0"])
    assert "at least 1" in error([str(tiny_run), "--every", "0"])
    assert "val tasks" in error([str(tiny_run), "--tasks", "100000", "--family-config", SHORT])
    assert not (tmp_path / "empty" / BEST_SUCCESS).exists()
