"""compare_seeds: the exact permutation test over runs, the per-recipe spreads, and its refusals,
on real results.json files written by eval_report."""

from __future__ import annotations

from pathlib import Path

import pytest

from mil_policy.compare_seeds import main, permutation_p, smallest_p
from mil_policy.eval_report import TrialResult, summarize, write_results

SCENES = 20


def run(out: Path, label: str, successes: int, chose: int | None = None, tasks: int = SCENES) -> str:
    """An evaluation of ``tasks`` scenes whose first ``successes`` succeed (and first ``chose`` ended at
    the target, when given)."""
    trials = [
        TrialResult(
            label,
            "mil",
            1,
            "full",
            f"reaching/test/{i}",
            i,
            0,
            1000 + i,
            [2000 + i],
            i < successes,
            chosen=None if chose is None else ("target" if i < chose else "distractor_0"),
        )
        for i in range(tasks)
    ]
    write_results(out, summarize(trials), trials, {"settings": {}})
    return str(out)


def test_permutation_p_enumerates_every_split() -> None:
    # 2 vs 2 with the two highest values in b: that split and its mirror are the most extreme of 6.
    assert permutation_p([0.1, 0.2], [0.5, 0.6]) == pytest.approx(2 / 6)
    assert permutation_p([0.5, 0.6], [0.1, 0.2]) == pytest.approx(2 / 6)
    # All values equal: every split is as extreme as the observed (zero) difference.
    assert permutation_p([0.3, 0.3], [0.3, 0.3, 0.3]) == 1.0
    # 4 vs 4 fully separated: 2 of the 70 splits.
    assert permutation_p([0.1, 0.11, 0.12, 0.13], [0.4, 0.41, 0.42, 0.43]) == pytest.approx(2 / 70)
    # 3 vs 1, b above all of a: only the observed split reaches that difference.
    assert permutation_p([0.1, 0.2, 0.3], [0.9]) == pytest.approx(1 / 4)
    assert smallest_p(2, 2) == pytest.approx(1 / 3) and smallest_p(4, 4) == pytest.approx(2 / 70)
    assert smallest_p(3, 1) == pytest.approx(1 / 4)
    with pytest.raises(ValueError):
        permutation_p([], [0.1])


def test_reports_each_recipe_across_its_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = [run(tmp_path / f"a{i}", "mil (elu)", k, chose=c) for i, (k, c) in enumerate([(4, 15), (6, 15), (5, 16)])]
    b = [run(tmp_path / f"b{i}", "mil (relu)", k, chose=c) for i, (k, c) in enumerate([(12, 14), (14, 15), (13, 17)])]
    assert main(["--a", *a, "--b", *b, "--names", "ELU", "ReLU"]) == 0
    out = capsys.readouterr().out
    assert "ELU: mil (elu), 1-shot, full, 3 run(s)" in out
    assert "success (of 20 scenes per run):" in out
    # rates 0.20, 0.30, 0.25: mean 25%, sample sd 5 points; binomial sd at 25% of 20 trials: 9.7 points
    assert "ELU: runs 4, 6, 5; mean 25.0%, range 20.0-30.0%, sd across runs 5.0 points (trials alone: 9.7)" in out
    assert "ReLU: runs 12, 14, 13; mean 65.0%" in out
    assert "difference ReLU - ELU: +40.0 points; exact permutation p = 0.1 over 20 splits" in out
    assert "(smallest possible with 3 and 3 runs: 0.1)" in out
    # The choice is compared too, by the same test: 15, 15, 16 against 14, 15, 17 of 20 overlap.
    assert "ended at the target (of 20 scenes per run):" in out
    assert "ELU: runs 15, 15, 16" in out and "ReLU: runs 14, 15, 17" in out
    choice_p = permutation_p([15 / 20, 15 / 20, 16 / 20], [14 / 20, 15 / 20, 17 / 20])
    assert f"p = {choice_p:.3g} over 20 splits" in out and choice_p > 0.5


def test_one_run_a_side_is_allowed_but_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a, b = run(tmp_path / "a", "mil (a)", 3), run(tmp_path / "b", "mil (b)", 9)
    assert main(["--a", a, "--b", b]) == 0
    out = capsys.readouterr().out
    assert "sd across runs - points" in out
    assert "p = 1 over 2 splits of the runs (smallest possible with 1 and 1 runs: 1)" in out
    assert "ended at the target" not in out  # not recorded: not reported


def test_refuses_runs_evaluated_on_other_scenes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = run(tmp_path / "a", "mil (a)", 3)
    b = run(tmp_path / "b", "mil (b)", 3, tasks=SCENES - 2)
    assert main(["--a", a, "--b", b]) == 2
    err = capsys.readouterr().err
    assert "compare_seeds: error:" in err and "other scenes" in err and "(2 differ)" in err


def test_refuses_a_missing_evaluation(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = run(tmp_path / "a", "mil (a)", 3)
    assert main(["--a", a, "--b", str(tmp_path / "nowhere")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["--a", a, "--b", a]) == 2
    assert "given more than once" in capsys.readouterr().err
