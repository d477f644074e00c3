"""plot_dataset_size reads evaluate's results.json files into one Figure-4 style plot and CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.image
import pytest

from mil_policy.dataset_size_plot import Point, choice_measure, main
from mil_policy.eval_report import TrialResult, summarize, write_results
from mil_sim.core import MOVED_NONE


def _evaluation(
    out: Path,
    label: str,
    method: str,
    successes: int,
    trials: int,
    seed: int = 1,
    chose: int | None = None,
    moved: int | None = None,
    extra_settings: dict[str, object] | None = None,
    family: str = "pushing",
) -> Path:
    """An evaluate-style output directory: ``successes`` of ``trials`` for ``label`` plus a random policy;
    with ``chose``, that many of the policy's trials (and one of random's) ended at the target; with
    ``moved``, that many moved the target most (random's: two) and the rest moved nothing."""
    rows = []
    for i in range(trials):
        for name, kind, ok in ((label, method, i < successes), ("random", "random", i == 0)):
            shots = 0 if kind == "random" else 1
            n_target = None if chose is None else 1 if kind == "random" else chose
            ended = None if n_target is None else ("target" if i < n_target else "distractor_0")
            n_moved = None if moved is None else 2 if kind == "random" else moved
            pushed = None if n_moved is None else ("target" if i < n_moved else MOVED_NONE)
            rows.append(
                TrialResult(
                    name, kind, shots, "full", f"pushing/test/{i}", i, 0, i, [i + 1], ok, chosen=ended, moved=pushed
                )
            )
    settings = {"tasks": trials, "trials": 1, "split": "test", "seed": seed, "shots": [1], **(extra_settings or {})}
    variants = [
        {"label": label, "method": method, "family": family},
        {"label": "random", "method": "random", "family": family},
    ]
    write_results(out, summarize(rows), rows, {"settings": settings, "variants": variants})
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


def test_moved_object_is_the_choice_panel_where_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Pushing records the object each trial moved; that, not where it ended, is the choice."""
    a = _evaluation(tmp_path / "a", "mil (a)", "mil", 3, 10, chose=5, moved=8)
    b = _evaluation(tmp_path / "b", "mil (b)", "mil", 4, 10, chose=5)
    out = tmp_path / "fig.png"
    assert main(["--point", "MIL", "500", str(a), "--random", str(a), "--out", str(out)]) == 0
    assert "ended at target 5/10, moved target 8/10" in capsys.readouterr().out
    with out.with_suffix(".csv").open(encoding="utf-8") as f:
        assert next(csv.DictReader(f))["moved_target"] == "8"
    assert matplotlib.image.imread(out).shape[1] > 1000  # two panels
    # One point without the moved object: its CSV cell is empty and the panel falls back to where the
    # trials ended, which every point counted (choice_measure, tested below), so still two panels.
    assert main(["--point", "MIL", "500", str(a), "--point", "MIL", "1000", str(b), "--out", str(out)]) == 0
    with out.with_suffix(".csv").open(encoding="utf-8") as f:
        assert [(r["chose_target"], r["moved_target"]) for r in csv.DictReader(f)] == [("5", "8"), ("5", "")]
    assert matplotlib.image.imread(out).shape[1] > 1000


def test_choice_measure_prefers_the_moved_object() -> None:
    def point(chose: int | None, moved: int | None) -> Point:
        return Point("MIL", 1, 1, 10, 0.1, 0.0, 0.4, "x", chose, moved)

    assert choice_measure([point(5, 8), point(4, 7)]) == ("moved_target", "trials that moved the target most (%)")
    assert choice_measure([point(5, 8), point(4, None)])[0] == "chose_target"  # type: ignore[index]
    assert choice_measure([point(None, 8), point(4, None)]) is None
    assert choice_measure([]) is None


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


def test_refuses_a_swapped_demo_control_or_another_family(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The swapped-demo control measures reading the demo the other way round and another family another
    task: neither is a point on the same curve. A results.json from before evaluate recorded the swap
    counts as unswapped, so older evaluations still plot with new ones."""
    old = _evaluation(tmp_path / "old", "mil (a)", "mil", 3, 10)
    unswapped = _evaluation(tmp_path / "new", "mil (b)", "mil", 5, 10, extra_settings={"swap_demo_roles": False})
    swapped = _evaluation(tmp_path / "swap", "mil (c)", "mil", 1, 10, extra_settings={"swap_demo_roles": True})
    reaching = _evaluation(tmp_path / "reach", "mil (d)", "mil", 4, 10, family="reaching")
    out = tmp_path / "fig4.png"
    assert main(["--point", "MIL", "1", str(old), "--point", "MIL", "2", str(unswapped), "--out", str(out)]) == 0
    assert out.exists()
    capsys.readouterr()
    out.unlink()
    assert main(["--point", "MIL", "1", str(old), "--point", "MIL", "2", str(swapped), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "evaluated differently" in err and "'swap_demo_roles': (False, True)" in err and not out.exists()
    assert main(["--point", "MIL", "1", str(old), "--random", str(reaching), "--out", str(out)]) == 2
    assert "'family': (['pushing'], ['reaching'])" in capsys.readouterr().err and not out.exists()
