"""Success statistics of an evaluation: Wilson intervals, the printed table, JSON / CSV and a bar plot.

Kept apart from the rollouts (mil_policy.evaluate) so the numbers can be recomputed from a
``results.json`` without a simulator. Success rates come with 95% Wilson score intervals rather than
normal-approximation ones because evaluations are small (the paper's placing protocol is 72 trials) and
rates sit near 0 or 1, where the normal interval leaves [0, 1] or collapses to a point.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mil_sim.core import MOVED_NONE

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; (0, 1) when there are no trials."""
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    denom = 1.0 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom
    # The interval always contains p; clamping keeps rounding at 0/n and n/n from saying otherwise.
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))


@dataclass
class TrialResult:
    """One closed-loop trial of one condition (method variant, shots, demo inputs) on one task."""

    label: str  # the method variant, e.g. "mil (ckpt_final)"
    method: str  # mil / contextual / lstm / random
    shots: int  # demos the policy was conditioned on (0: the random policy sees none)
    demo_inputs: str  # full / no_actions / video_only / none
    task_id: str
    task_index: int
    trial: int
    trial_seed: int
    demo_seeds: list[int]  # trial seeds of the demos (never equal to trial_seed)
    success: bool
    error: str | None = None  # why a rollout was cut short (e.g. a non-finite action)
    video: str | None = None  # path relative to the output directory
    chosen: str | None = None  # the object the trial ended at (Env.chosen_role): "target" or a distractor
    target_distance: float | None = None  # m from the target at the end (Env.target_distance)
    moved: str | None = None  # the object the trial moved furthest, or MOVED_NONE (Env.moved_role)


@dataclass
class ConditionSummary:
    label: str
    method: str
    shots: int
    demo_inputs: str
    successes: int
    trials: int
    rate: float
    ci_low: float
    ci_high: float
    # Trials that ended at the target object, right or not about precision (None: the family does not
    # say). Against chance (1 / objects) it tells whether the demo was understood even when success fails.
    chose_target: int | None = None
    # Median over trials of how far from the target they ended (m; None: the family does not say): how
    # near the misses were, which tells an imprecise policy from one that goes elsewhere.
    median_target_distance: float | None = None
    # Trials that moved the target most, and that moved another object most (the rest moved none; None:
    # the family does not say). Where objects are pushed, this is the choice itself: where a trial ended
    # also depends on where the objects started.
    moved_target: int | None = None
    moved_other: int | None = None


@dataclass(frozen=True)
class ChoiceMeasure:
    """One way of counting whether a trial chose the demonstrated object: a trial hit where its
    ``trial_field`` is "target", counted per condition in the summary's ``summary_field``."""

    trial_field: str
    summary_field: str
    description: str  # what the counted trials did, for reports and axis labels

    def hit(self, t: TrialResult) -> bool:
        """Whether trial ``t`` chose the target by this measure."""
        return getattr(t, self.trial_field) == "target"


# The measures of the choice, preferred first: the object moved most where it is recorded (pushing, where
# the object a trial ends nearest also depends on where the objects started), else the object ended at.
# ``compare_evals`` / ``compare_seeds`` test and ``plot_dataset_size`` plots the first one recorded by
# everything compared.
CHOICE_MEASURES = (
    ChoiceMeasure("moved", "moved_target", "moved the target most"),
    ChoiceMeasure("chosen", "chose_target", "ended at the target"),
)


def recorded_choice(trials: Iterable[TrialResult]) -> ChoiceMeasure | None:
    """The first of ``CHOICE_MEASURES`` that every one of ``trials`` recorded (None: none was), so that
    tools comparing evaluations count the choice the same way."""
    trials = list(trials)
    return next((m for m in CHOICE_MEASURES if all(getattr(t, m.trial_field) is not None for t in trials)), None)


def condition_key(r: TrialResult | ConditionSummary) -> tuple[str, int, str]:
    return (r.label, r.shots, r.demo_inputs)


def summarize(trials: Sequence[TrialResult]) -> list[ConditionSummary]:
    """One row per condition, in the order conditions first appear."""
    groups: dict[tuple[str, int, str], list[TrialResult]] = {}
    for t in trials:
        groups.setdefault(condition_key(t), []).append(t)
    rows = []
    for (label, shots, inputs), group in groups.items():
        k, n = sum(t.success for t in group), len(group)
        lo, hi = wilson_interval(k, n)
        rate = k / n if n else 0.0
        chosen = [t.chosen for t in group]
        chose_target = sum(c == "target" for c in chosen) if n and None not in chosen else None
        distances = [t.target_distance for t in group]
        median = float(statistics.median(distances)) if n and None not in distances else None
        moved = [t.moved for t in group]
        known = bool(n) and None not in moved
        moved_target = sum(m == "target" for m in moved) if known else None
        moved_other = sum(m not in ("target", MOVED_NONE) for m in moved) if known else None
        rows.append(
            ConditionSummary(
                label,
                group[0].method,
                shots,
                inputs,
                k,
                n,
                rate,
                lo,
                hi,
                chose_target,
                median,
                moved_target,
                moved_other,
            )
        )
    return rows


def format_table(rows: Sequence[ConditionSummary]) -> str:
    """Fixed-width table: method, shots, demo inputs, successes / trials, rate, 95% Wilson CI, and where
    the family reports them, how often the trials ended at the target object, how far from it, and which
    object they moved."""
    header: tuple[str, ...] = ("method", "shots", "demo inputs", "success", "rate", "95% CI (Wilson)")
    body: list[tuple[str, ...]] = [
        (
            r.label,
            "-" if r.method == "random" else str(r.shots),
            r.demo_inputs,
            f"{r.successes}/{r.trials}",
            f"{100 * r.rate:.1f}%",
            f"[{100 * r.ci_low:.1f}%, {100 * r.ci_high:.1f}%]",
        )
        for r in rows
    ]
    if any(r.chose_target is not None for r in rows):
        header += ("ended at target",)
        body = [
            (*line, "-" if r.chose_target is None else f"{r.chose_target}/{r.trials}")
            for line, r in zip(body, rows, strict=True)
        ]
    if any(r.median_target_distance is not None for r in rows):
        header += ("median to target",)
        body = [
            (*line, "-" if r.median_target_distance is None else f"{100 * r.median_target_distance:.1f} cm")
            for line, r in zip(body, rows, strict=True)
        ]
    if any(r.moved_target is not None for r in rows):
        header += ("moved target / other / none",)
        body = [(*line, _moved_cell(r)) for line, r in zip(body, rows, strict=True)]
    widths = [max(len(x) for x in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in (header, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _moved_cell(r: ConditionSummary) -> str:
    """``target / other / none`` counts of the object each trial moved most ("-": not recorded)."""
    if r.moved_target is None or r.moved_other is None:
        return "-"
    return f"{r.moved_target} / {r.moved_other} / {r.trials - r.moved_target - r.moved_other}"


def write_results(
    out: Path, rows: Sequence[ConditionSummary], trials: Sequence[TrialResult], meta: dict[str, Any]
) -> dict[str, Path]:
    """results.json (settings, summary, every trial), results.csv (summary) and trials.csv."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "trials_csv": out / "trials.csv"}
    doc = {**meta, "summary": [asdict(r) for r in rows], "trials": [asdict(t) for t in trials]}
    paths["json"].write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    _write_csv(paths["csv"], [asdict(r) for r in rows], list(ConditionSummary.__dataclass_fields__))
    trial_rows = [{**asdict(t), "demo_seeds": " ".join(map(str, t.demo_seeds))} for t in trials]
    _write_csv(paths["trials_csv"], trial_rows, list(TrialResult.__dataclass_fields__))
    return paths


class ResultsError(ValueError):
    """A path is not a readable evaluate ``results.json`` (the message says why)."""


def read_results(path: str | Path, require: str = "summary") -> dict[str, Any]:
    """The ``results.json`` of an evaluate run (``path`` is the file or its directory), with its
    ``require`` list (``summary`` or ``trials``) checked, for the tools that read evaluations back."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{file}: no such file (an evaluate --out directory or its results.json)") from None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{file}: not readable as JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get(require), list):
        raise ResultsError(f"{file}: not an evaluate results.json (no {require!r} list)")
    return doc


def _write_csv(path: Path, rows: list[dict[str, Any]], fields: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def plot_success(rows: Sequence[ConditionSummary], path: Path, title: str = "") -> Path:
    """Bar per condition with its Wilson interval as an asymmetric error bar (matplotlib Agg)."""
    import matplotlib  # only the plot needs it; Agg must be chosen before pyplot is imported

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r.label if r.method == "random" else f"{r.label}\n{r.shots}-shot, {r.demo_inputs}" for r in rows]
    rates = [100 * r.rate for r in rows]
    err = [[max(0.0, 100 * (r.rate - r.ci_low)) for r in rows], [max(0.0, 100 * (r.ci_high - r.rate)) for r in rows]]
    methods = list(dict.fromkeys(r.label for r in rows))
    colors = [f"C{methods.index(r.label) % 10}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(rows) + 1.5), 4.0))
    ax.bar(range(len(rows)), rates, yerr=err, capsize=4, color=colors)
    for i, r in enumerate(rows):
        ax.text(i, 100 * r.ci_high + 1.5, f"{r.successes}/{r.trials}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylim(0, 108)
    ax.set_ylabel("success rate (%), 95% Wilson CI")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
