"""``compare_seeds``: do two training recipes differ once each is trained on several seeds?

    compare_seeds --a runs/eval_elu_s0 runs/eval_elu_s1 --b runs/eval_relu_s0 runs/eval_relu_s1

``compare_evals`` asks whether two *checkpoints* differ on the same scenes; its McNemar test counts
every scene as evidence, so it answers for those two trained networks only. Whether a *recipe* (an
activation, a dataset size) is better is a question about training runs: two seeds of one recipe can
differ by more than the recipes do (40x32 reaching with ReLU: 56 and 143 of 300), and then each run's
300 trials say little about the next seed's. Here the unit is the run: every evaluation gives one
success rate, each recipe's rates are summarised across its seeds (mean, spread, and how large a spread
the trials alone would make), and the recipes are compared by an exact permutation test on those rates:
the share of all ways of splitting the runs into groups of the same sizes whose difference of means is
at least as large as the observed one. With few seeds the smallest attainable p is large (two seeds
each: 1/3), which is printed so that a high p reads as "too few seeds", not as "no difference".

All runs must have been evaluated on the same scenes (``evaluate`` with the same ``--split``,
``--tasks``, ``--trials``, ``--seed`` and ``--shots``), so that the rates differ by the runs only. The
choice (moved / ended at the target, ``eval_report.CHOICE_MEASURES``) is compared the same way where
every run recorded it.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mil_policy.compare_evals import (
    CompareError,
    SceneKey,
    condition_name,
    load_trials,
    scene_key,
    select,
    succeeded,
)
from mil_policy.eval_report import TrialResult, recorded_choice

Count = Callable[[TrialResult], bool]


@dataclass(frozen=True)
class Run:
    """One evaluated training run: where it came from and its trials of the compared condition."""

    path: str
    trials: tuple[TrialResult, ...]

    def count(self, count: Count) -> int:
        return sum(map(count, self.trials))

    def rate(self, count: Count) -> float:
        return self.count(count) / len(self.trials)


@dataclass(frozen=True)
class GroupSummary:
    """One recipe's rates across its runs."""

    rates: tuple[float, ...]
    trials: int  # per run (all runs share the scenes)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.rates)

    @property
    def seed_sd(self) -> float | None:
        """Sample standard deviation of the run rates (None with one run)."""
        return statistics.stdev(self.rates) if len(self.rates) > 1 else None

    @property
    def trial_sd(self) -> float:
        """The spread one run's rate would have from its trials alone (binomial, at the mean rate): a
        seed spread well above it says the runs differ, not just their finite evaluations."""
        return math.sqrt(self.mean * (1 - self.mean) / self.trials)


def permutation_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided exact permutation p-value of the difference of means of ``a`` and ``b``: the share of
    all relabelings of the pooled values into groups of the same sizes with |mean difference| at least
    the observed one (ties counted, with a small tolerance for rounding)."""
    if not a or not b:
        raise ValueError("each group needs at least one value")
    pooled = [*a, *b]
    observed = abs(statistics.fmean(a) - statistics.fmean(b))
    total = sum(pooled)
    hits = splits = 0
    for idx in itertools.combinations(range(len(pooled)), len(a)):
        sa = sum(pooled[i] for i in idx)
        diff = abs(sa / len(a) - (total - sa) / len(b))
        hits += diff >= observed - 1e-12
        splits += 1
    return hits / splits


def smallest_p(na: int, nb: int) -> float:
    """The smallest two-sided p the permutation test can give for groups of these sizes."""
    splits = math.comb(na + nb, na)
    return (2 if na == nb else 1) / splits


def load_runs(paths: Sequence[str], pick: str | None) -> list[Run]:
    return [Run(p, tuple(select(load_trials(p), pick, p))) for p in paths]


def check_same_scenes(runs: Sequence[Run]) -> None:
    """Refuse runs evaluated on different scenes, naming the first that differs from the first run."""

    def scenes(run: Run) -> set[SceneKey]:
        return {scene_key(t) for t in run.trials}

    first = scenes(runs[0])
    for run in runs[1:]:
        if scenes(run) != first:
            raise CompareError(
                f"{run.path} was evaluated on other scenes than {runs[0].path} ({len(scenes(run) ^ first)} "
                "differ): evaluate every run with the same --split, --tasks, --trials, --seed and --shots"
            )


def compare_block(what: str, a: Sequence[Run], b: Sequence[Run], count: Count, names: tuple[str, str]) -> str:
    """Per-run counts, each group's mean and spreads, and the permutation test, for one outcome."""
    n = len(a[0].trials)
    lines = [f"{what} (of {n} scenes per run):"]
    groups = []
    for name, runs in zip(names, (a, b), strict=True):
        g = GroupSummary(tuple(r.rate(count) for r in runs), n)
        groups.append(g)
        per_run = ", ".join(f"{r.count(count)}" for r in runs)
        sd = "-" if g.seed_sd is None else f"{100 * g.seed_sd:.1f}"
        lines.append(
            f"  {name}: runs {per_run}; mean {100 * g.mean:.1f}%, range {100 * min(g.rates):.1f}-"
            f"{100 * max(g.rates):.1f}%, sd across runs {sd} points (trials alone: {100 * g.trial_sd:.1f})"
        )
    ga, gb = groups
    p = permutation_p(ga.rates, gb.rates)
    lines.append(
        f"  difference {names[1]} - {names[0]}: {100 * (gb.mean - ga.mean):+.1f} points; exact permutation "
        f"p = {p:.3g} over {math.comb(len(a) + len(b), len(a))} splits of the runs "
        f"(smallest possible with {len(a)} and {len(b)} runs: {smallest_p(len(a), len(b)):.3g})"
    )
    return "\n".join(lines)


def compare(
    a_paths: Sequence[str],
    b_paths: Sequence[str],
    pick: str | None = None,
    names: tuple[str, str] = ("A", "B"),
) -> str:
    twice = [p for p in dict.fromkeys([*a_paths, *b_paths]) if [*a_paths, *b_paths].count(p) > 1]
    if twice:
        raise CompareError(f"{', '.join(twice)} given more than once: each run counts once")
    a, b = load_runs(a_paths, pick), load_runs(b_paths, pick)
    check_same_scenes([*a, *b])
    lines = [
        f"{name}: {condition_name(runs[0].trials[0])}, {len(runs)} run(s)"
        for name, runs in zip(names, (a, b), strict=True)
    ]
    lines.append(compare_block("success", a, b, succeeded, names))
    measure = recorded_choice(t for r in (*a, *b) for t in r.trials)
    if measure is not None:
        lines.append(compare_block(measure.description, a, b, measure.hit, names))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="compare_seeds", description=__doc__.split("\n")[0])
    parser.add_argument("--a", nargs="+", required=True, help="evaluate --out directories of recipe A's runs")
    parser.add_argument("--b", nargs="+", required=True, help="the same for recipe B")
    parser.add_argument("--names", nargs=2, default=("A", "B"), metavar=("A", "B"), help="what to call the two")
    parser.add_argument("--pick", help="the condition, by part of its name, when the files hold several")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        print(compare(args.a, args.b, args.pick, tuple(args.names)))
    except CompareError as exc:
        print(f"compare_seeds: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
