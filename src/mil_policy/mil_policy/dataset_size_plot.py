"""One-shot success against meta-training dataset size, one line per method (the seed paper's Figure 4).

    plot_dataset_size --point MIL 500 runs/sweep/eval_mil_t125 --point MIL 1000 runs/sweep/eval_mil_t250 \
        --point contextual 500 runs/sweep/eval_contextual_t125 ... [--random RESULTS] --out docs/img/fig4.png

Each ``--point METHOD DEMOS EVAL`` is one trained policy: the method's name in the legend, how many
demonstrations it was meta-trained on, and the directory (or ``results.json``) its ``evaluate`` run wrote.
The point is that run's first non-random condition (its success rate and 95% Wilson interval, drawn as an
error bar); with ``--random`` the random policy's rate of that evaluation is drawn as a horizontal line,
as the paper quotes a random baseline. A second panel separates choosing the demonstrated object from
reaching it precisely: where every evaluation recorded which object each trial moved most (pushing), the
rate of trials that moved the target; otherwise, where every one counted them, the trials that ended at
the target object. In pushing the ended-at rate is the wrong measure: a trial that moves nothing "ends"
at whichever object the layout put nearer the goal (chance). The points are also written as CSV next to
the plot, so the figure's numbers can be read without the image. Runs evaluated differently (another
family, tasks, trials, seed, split, shots, expert noise, or the swapped-demo control) are refused: their
points would not be comparable.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mil_policy import eval_report
from mil_policy.eval_report import CHOICE_MEASURES, wilson_interval

# The evaluate settings that change what a success rate measures, each with the value an older
# results.json that lacks the key was evaluated with (None: every results.json has it).
COMPARED_SETTINGS: dict[str, Any] = {
    "tasks": None,
    "trials": None,
    "split": None,
    "seed": None,
    "shots": None,
    "expert_noise": 1.0,
    "swap_demo_roles": False,  # the control in which each demo shows the other object as the target
}


class PlotError(ValueError):
    """A results file that is missing, unreadable or not comparable with the others."""


@dataclass(frozen=True)
class Point:
    method: str
    demos: int
    successes: int
    trials: int
    rate: float
    ci_low: float
    ci_high: float
    source: str
    chose_target: int | None = None  # trials that ended at the target object (None: not recorded)
    moved_target: int | None = None  # trials that moved the target object most (None: not recorded)


def read_results(path: Path) -> dict[str, Any]:
    """The ``results.json`` of an evaluate run (``path`` is the file or its directory)."""
    try:
        return eval_report.read_results(path, require="summary")
    except eval_report.ResultsError as exc:
        raise PlotError(str(exc)) from None


def _row(doc: dict[str, Any], random: bool, source: str) -> dict[str, Any]:
    rows = [r for r in doc["summary"] if (r.get("method") == "random") == random]
    if not rows:
        raise PlotError(f"{source}: has no {'random' if random else 'learned-policy'} condition")
    return rows[0]


def point_of(method: str, demos: int, doc: dict[str, Any], source: str) -> Point:
    """The first learned-policy condition of one evaluation (``doc``, read from ``source``), as a point
    of ``method`` at ``demos``."""
    if demos < 1:
        raise PlotError(f"--point {method} {demos}: the number of demos must be positive")
    row = _row(doc, random=False, source=source)
    return Point(
        method,
        demos,
        row["successes"],
        row["trials"],
        row["rate"],
        row["ci_low"],
        row["ci_high"],
        source,
        row.get("chose_target"),
        row.get("moved_target"),
    )


def protocol(doc: dict[str, Any]) -> dict[str, Any]:
    """What must match for two evaluations' rates to share an axis: the task families of its variants
    and the COMPARED_SETTINGS (a missing setting read as its value before evaluate recorded it)."""
    settings = doc.get("settings", {})
    picked = {k: settings.get(k, default) for k, default in COMPARED_SETTINGS.items()}
    picked["family"] = sorted({v.get("family") for v in doc.get("variants", [])})
    return picked


def check_comparable(docs: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Refuse evaluations (source, results doc) whose protocols differ."""
    first: tuple[str, dict[str, Any]] | None = None
    for path, doc in docs:
        picked = protocol(doc)
        if first is None:
            first = (path, picked)
        elif picked != first[1]:
            diff = {k: (first[1][k], v) for k, v in picked.items() if first[1][k] != v}
            raise PlotError(f"{path} was evaluated differently from {first[0]}: {diff}")


def _panel(
    ax: Any, points: Sequence[Point], rate: Callable[[Point], tuple[int, int]], random_rate: float | None, ylabel: str
) -> None:
    """One method per line: ``rate(point) -> (k, n)`` with its 95% Wilson interval as error bars."""
    for method in dict.fromkeys(p.method for p in points):
        series = sorted((p for p in points if p.method == method), key=lambda p: p.demos)
        ys, lo, hi = [], [], []
        for p in series:
            k, n = rate(p)
            low, high = wilson_interval(k, n)
            ys.append(100 * k / n)
            lo.append(ys[-1] - 100 * low)
            hi.append(100 * high - ys[-1])
        ax.errorbar([p.demos for p in series], ys, yerr=[lo, hi], marker="o", capsize=3, label=method)
    if random_rate is not None:
        ax.axhline(100 * random_rate, color="grey", linestyle="--", label="random")
    ax.set_xscale("log")
    xticks = sorted({p.demos for p in points})
    ax.set_xticks(xticks, [str(x) for x in xticks])
    ax.minorticks_off()
    ax.set_xlabel("meta-training demonstrations")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()


def choice_measure(points: Sequence[Point]) -> tuple[str, str] | None:
    """(Point field, axis label) of the second panel, or None: the first of ``eval_report.CHOICE_MEASURES``
    that every point recorded (the moved object in pushing, else the object ended at)."""
    for m in CHOICE_MEASURES:
        if points and all(getattr(p, m.summary_field) is not None for p in points):
            return m.summary_field, f"trials that {m.description} (%)"
    return None


def plot(points: Sequence[Point], random: dict[str, Any] | None, out: Path, title: str) -> None:
    """Success against dataset size; beside it how often the target was chosen, where every point says."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measure = choice_measure(points)
    fig, axes = plt.subplots(1, 2 if measure else 1, figsize=(11.0 if measure else 5.5, 4.0), squeeze=False)
    random_rate = None if random is None else random["rate"]
    _panel(axes[0, 0], points, lambda p: (p.successes, p.trials), random_rate, "one-shot success (%)")
    if measure:
        field, label = measure
        random_chosen = None
        if random is not None and random.get(field) is not None:
            random_chosen = random[field] / random["trials"]
        _panel(axes[0, 1], points, lambda p: (getattr(p, field), p.trials), random_chosen, label)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def write_csv(points: Sequence[Point], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(Point.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(p) for p in points)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="plot_dataset_size", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--point",
        nargs=3,
        action="append",
        required=True,
        metavar=("METHOD", "DEMOS", "EVAL"),
        help="a method's evaluation after meta-training on DEMOS demonstrations (repeatable)",
    )
    p.add_argument("--random", type=Path, help="an evaluation that includes --method random, drawn as a line")
    p.add_argument("--title", default="One-shot success vs dataset size")
    p.add_argument("--out", type=Path, required=True, help="PNG to write (a CSV of the points goes beside it)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        points, docs = [], []
        for method, demos, path in args.point:
            try:
                n = int(demos)
            except ValueError:
                raise PlotError(f"--point {method} {demos} {path}: DEMOS must be an integer") from None
            docs.append((path, read_results(Path(path))))
            points.append(point_of(method, n, docs[-1][1], path))
        random = None
        if args.random:
            docs.append((str(args.random), read_results(args.random)))
            random = _row(docs[-1][1], random=True, source=str(args.random))
        check_comparable(docs)
    except PlotError as exc:
        print(f"plot_dataset_size: error: {exc}", file=sys.stderr)
        return 2
    plot(points, random, args.out, args.title)
    write_csv(points, args.out.with_suffix(".csv"))
    for p in points:
        chose = "" if p.chose_target is None else f", ended at target {p.chose_target}/{p.trials}"
        if p.moved_target is not None:
            chose += f", moved target {p.moved_target}/{p.trials}"
        print(
            f"{p.method:12s} {p.demos:6d} demos  {p.successes}/{p.trials} = {100 * p.rate:.1f}% "
            f"[{100 * p.ci_low:.1f}%, {100 * p.ci_high:.1f}%]{chose}"
        )
    print(f"wrote {args.out} and {args.out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
