"""compare_evals: McNemar's exact test, pairing by scene, and clear refusals, on real results.json files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from mil_policy.compare_evals import main, mcnemar_exact
from mil_policy.eval_report import TrialResult, summarize, write_results


def trial(
    label: str,
    task: int,
    seed: int,
    success: bool,
    shots: int = 1,
    inputs: str = "full",
    chosen: str | None = None,
    moved: str | None = None,
) -> TrialResult:
    return TrialResult(
        label,
        "mil",
        shots,
        inputs,
        f"placing/test/{task}",
        task,
        0,
        seed,
        [seed + 1],
        success,
        chosen=chosen,
        moved=moved,
    )


def write(out: Path, trials: list[TrialResult]) -> Path:
    write_results(out, summarize(trials), trials, {"settings": {}})
    return out


def test_mcnemar_exact_matches_the_binomial_tail() -> None:
    assert mcnemar_exact(0, 10) == pytest.approx(2 * 0.5**10)
    assert mcnemar_exact(10, 0) == mcnemar_exact(0, 10)
    assert mcnemar_exact(5, 5) == 1.0 and mcnemar_exact(0, 0) == 1.0
    # 2 vs 8: 2 * P(X <= 2), X ~ Bin(10, 1/2) = 2 * 56 / 1024
    assert mcnemar_exact(2, 8) == pytest.approx(112 / 1024)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_pairs_by_scene_and_reports_the_discordant_split(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # Twelve shared scenes: both succeed on 2, only B on 9, only A on 1; A has an extra scene B lacks.
    a = [trial("mil (a)", t, 100 + t, t < 3) for t in range(12)] + [trial("mil (a)", 50, 7, True)]
    b = [trial("mil (b)", t, 100 + t, t != 2) for t in range(12)]
    write(tmp_path / "a", a)
    write(tmp_path / "b", b)
    assert main([str(tmp_path / "a"), str(tmp_path / "b" / "results.json")]) == 0
    out = capsys.readouterr().out
    assert "A: mil (a), 1-shot, full: 3/12 = 25.0%" in out
    assert "B: mil (b), 1-shot, full: 11/12 = 91.7%" in out
    assert "both succeed 2, A only 1, B only 9, neither 0" in out
    assert f"p = {mcnemar_exact(1, 9):.3g}" in out
    assert "note: 1 trial(s) of A have no counterpart" in out
    assert "ended at the target" not in out and "moved the target" not in out  # not recorded: not reported


def test_pairs_the_choice_where_both_recorded_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Success alike, choice not: the choice line carries its own discordant split and p-value."""
    a = [trial("mil (a)", t, t, t < 2, chosen="target" if t < 10 else "distractor_0") for t in range(12)]
    b = [trial("mil (b)", t, t, t < 2, chosen="target" if t < 2 else "distractor_1") for t in range(12)]
    write(tmp_path / "a", a)
    write(tmp_path / "b", b)
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "both succeed 2, A only 0, B only 0" in out and "p = 1\n" in out
    p = mcnemar_exact(8, 0)
    assert f"ended at the target: A 10, B 2 of 12; A only 8, B only 0, McNemar exact two-sided p = {p:.3g}" in out
    assert "moved the target" not in out

    # Pushing records both; the object a trial ended at there depends on the layout, so the moved one is tested.
    pushed = [trial("mil (c)", t, t, False, chosen="target", moved="target" if t < 3 else "none") for t in range(12)]
    write(tmp_path / "c", pushed)
    write(tmp_path / "d", [dataclasses.replace(x, label="mil (d)", moved="target") for x in pushed])
    assert main([str(tmp_path / "c"), str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "moved the target most: A 3, B 12 of 12; A only 0, B only 9" in out and "ended at the target" not in out


def test_picks_one_condition_of_several_and_refuses_what_cannot_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    both = [trial("mil (x)", t, t, t % 2 == 0) for t in range(4)]
    both += [trial("mil (x)", t, t, True, inputs="no_actions") for t in range(4)]
    write(tmp_path / "x", both)
    assert main([str(tmp_path / "x"), str(tmp_path / "x")]) == 2
    assert "2 conditions; pick one with --a / --b" in capsys.readouterr().err
    assert main([str(tmp_path / "x"), str(tmp_path / "x"), "--a", "full", "--b", "no_actions"]) == 0
    assert "A only 0, B only 2" in capsys.readouterr().out

    write(tmp_path / "other", [trial("mil (y)", t, 999 + t, True) for t in range(4)])
    assert main([str(tmp_path / "x"), str(tmp_path / "other"), "--a", "full"]) == 2
    assert "share no scene" in capsys.readouterr().err

    (tmp_path / "bad.json").write_text(json.dumps({"summary": []}))
    assert main([str(tmp_path / "bad.json"), str(tmp_path / "x")]) == 2
    assert "not an evaluate results.json" in capsys.readouterr().err
    assert main([str(tmp_path / "missing"), str(tmp_path / "x")]) == 2
    assert "no such file" in capsys.readouterr().err
