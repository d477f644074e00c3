"""plot_dataset_size reads evaluate's results.json files into one Figure-4 style plot and CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.image
import pytest

from mil_policy.dataset_size_plot import main
from mil_policy.eval_report import TrialResult, summarize, write_results


def _evaluation(
    out: Path, label: str, method: str, successes: int, trials: int, seed: int = 1, chose: int | None = None
) -> Path:
    """An evaluate-style output directory: ``successes`` of ``trials`` for ``label`` plus a random policy;
    with ``chose``, that many of the policy's trials (and one of random's) ended at the target."""
    rows = []
    for i in range(trials):
        for name, kind, ok in ((label, method, i < successes), ("random", "random", i == 0)):
            shots = 0 if kind == "random" else 1
            n_target = None if chose is None else 1 if kind == "random" else chose
            ended = None if n_target is None else ("target" if i < n_target else "distractor_0")
            rows.append(
                TrialResult(name, kind, shots, "full", f"reaching/test/{i}", i, 0, i, [i + 1], ok, chosen=ended)
            )
    settings = {"tasks": trials, "trials": 1, "split": "test", "seed": seed, "shots": [1]}
    write_results(out, summarize(rows), rows, {"settings": settings})
    return out


def test_points_plot_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _evaluation(tmp_path / "a", "mil (a)", "mil", 3, 10)
    b = _evaluation(tmp_path / "b", "mil (b)", "mil", 6, 10)
    c = _evaluation(tmp_path / "c", "contextual (c)", "contextual", 1, 10)
    out = tmp_path / "fig" / "fig4.png"
    argv = ["--point", "MIL", "500", str(a), "--point", "MIL", "1000", str(b / "results.json")]
    argv += ["--point", "contextual", "500", str(c), "--random", str(a), "--out", str(out)]
    assert main(argv) == 0
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
    with out.with_suffix(".csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], int(r["demos"]), int(r["successes"])) for r in rows] == [
        ("MIL", 500, 3),
        ("MIL", 1000, 6),
        ("contextual", 500, 1),
    ]
    assert float(rows[1]["ci_low"]) < 0.6 < float(rows[1]["ci_high"])
    assert rows[0]["chose_target"] == ""  # not recorded by these evaluations: one panel, no count
    assert "6/10 = 60.0%" in capsys.readouterr().out


def test_ended_at_target_gets_its_own_panel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _evaluation(tmp_path / "a", "mil (a)", "mil", 3, 10, chose=7)
    one = _evaluation(tmp_path / "one", "mil (one)", "mil", 3, 10)
    with_chosen, without = tmp_path / "two.png", tmp_path / "one.png"
    assert main(["--point", "MIL", "500", str(a), "--random", str(a), "--out", str(with_chosen)]) == 0
    assert "ended at target 7/10" in capsys.readouterr().out
    assert main(["--point", "MIL", "500", str(one), "--out", str(without)]) == 0
    with with_chosen.with_suffix(".csv").open(encoding="utf-8") as f:
        assert next(csv.DictReader(f))["chose_target"] == "7"
    # Two panels side by side: about twice as wide as the single-panel figure, same height.
    (h2, w2), (h1, w1) = (matplotlib.image.imread(p).shape[:2] for p in (with_chosen, without))
    assert h2 == h1 and w2 > 1.8 * w1


def test_refuses_incomparable_or_missing_evaluations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _evaluation(tmp_path / "a", "mil (a)", "mil", 3, 10)
    other_seed = _evaluation(tmp_path / "b", "mil (b)", "mil", 3, 10, seed=2)
    out = tmp_path / "fig4.png"
    assert main(["--point", "MIL", "1", str(a), "--point", "MIL", "2", str(other_seed), "--out", str(out)]) == 2
    assert "evaluated differently" in capsys.readouterr().err and not out.exists()
    assert main(["--point", "MIL", "1", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["--point", "MIL", "many", str(a), "--out", str(out)]) == 2
    assert "must be an integer" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    assert main(["--point", "MIL", "1", str(tmp_path / "bad.json"), "--out", str(out)]) == 2
    assert "not readable as JSON" in capsys.readouterr().err
