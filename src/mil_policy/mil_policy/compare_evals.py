"""``compare_evals``: are two evaluations on the same scenes different? A paired test, not two intervals.

    compare_evals runs/eval_a/results.json runs/eval_b          # a results.json or its directory

Every placing row is evaluated on the same held-out tasks, trial seeds and demos (``evaluate --seed``),
so two checkpoints can be compared scene by scene. Overlapping Wilson intervals (300 trials: about +-5
points each) hide differences that the pairing shows, because most scenes are easy or hard for both
checkpoints alike; what carries the evidence is the scenes where exactly one succeeds. McNemar's exact
test asks whether those discordant scenes split evenly, as they would if the two did equally well.

Success mixes choosing the demonstrated object with reaching it precisely, so where both evaluations
recorded it the same test is run on the choice too: the trials that moved the target most (pushing),
else those that ended at the target (placing, reaching; in pushing, where a trial that moves nothing
ends at whichever object the layout put nearer, that is not a choice).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mil_policy.eval_report import ResultsError, TrialResult, read_results, recorded_choice

SceneKey = tuple[str, int, tuple[int, ...]]  # task, trial seed, demo seeds: what both runs must share
Outcome = Callable[[TrialResult], bool]


def scene_key(t: TrialResult) -> SceneKey:
    """What makes two trials the same scene: the task, the trial seed and the demos' seeds."""
    return (t.task_id, t.trial_seed, tuple(t.demo_seeds))


def succeeded(t: TrialResult) -> bool:
    return bool(t.success)


class CompareError(ValueError):
    """The evaluations cannot be paired (the message says why)."""


@dataclass(frozen=True)
class Paired:
    """Success counts of two conditions over the scenes both were evaluated on."""

    a: str
    b: str
    scenes: int
    both: int
    a_only: int
    b_only: int
    neither: int

    @property
    def a_successes(self) -> int:
        return self.both + self.a_only

    @property
    def b_successes(self) -> int:
        return self.both + self.b_only

    @property
    def p_value(self) -> float:
        return mcnemar_exact(self.a_only, self.b_only)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs against a fair coin (1.0 when there are none)."""
    if a_only < 0 or b_only < 0:
        raise ValueError(f"discordant counts must be >= 0, got {a_only}, {b_only}")
    n = a_only + b_only
    tail = sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1)) / 2**n
    return min(1.0, 2.0 * tail)


def condition_name(t: TrialResult) -> str:
    return f"{t.label}, {t.shots}-shot, {t.demo_inputs}"


def load_trials(path: str | Path) -> list[TrialResult]:
    """The trials of an ``evaluate`` output (its results.json, or the directory holding it)."""
    try:
        return [TrialResult(**t) for t in read_results(path, require="trials")["trials"]]
    except ResultsError as exc:
        raise CompareError(str(exc)) from None
    except TypeError as exc:  # a trial with missing or unknown fields
        raise CompareError(f"{path}: not an evaluate results.json ({exc})") from None


def select(trials: Sequence[TrialResult], pick: str | None, source: str) -> list[TrialResult]:
    """The trials of one condition: the only one, or the one whose name contains ``pick``."""
    names = list(dict.fromkeys(condition_name(t) for t in trials))
    chosen = [n for n in names if pick is None or pick in n]
    if len(chosen) != 1:
        what = "no condition" if not chosen else f"{len(chosen)} conditions"
        hint = "" if pick is None else f" containing {pick!r}"
        raise CompareError(f"{source}: {what}{hint}; pick one with --a / --b from: {'; '.join(names)}")
    return [t for t in trials if condition_name(t) == chosen[0]]


def pair(a: Sequence[TrialResult], b: Sequence[TrialResult], outcome: Outcome = succeeded) -> Paired:
    """Match the two conditions scene by scene and count ``outcome`` (success unless told otherwise);
    refuse when no scene is shared."""

    def by_scene(trials: Sequence[TrialResult]) -> dict[SceneKey, bool]:
        return {scene_key(t): outcome(t) for t in trials}

    sa, sb = by_scene(a), by_scene(b)
    common = sa.keys() & sb.keys()
    if not common:
        raise CompareError(
            "the evaluations share no scene (same task, trial seed and demo seeds): evaluate both with the "
            "same --split, --tasks, --trials, --seed and --shots"
        )
    counts = {"both": 0, "a_only": 0, "b_only": 0, "neither": 0}
    for key in common:
        ka, kb = sa[key], sb[key]
        counts["both" if ka and kb else "a_only" if ka else "b_only" if kb else "neither"] += 1
    return Paired(condition_name(a[0]), condition_name(b[0]), len(common), **counts)


def choice_line(what: str, p: Paired) -> str:
    """One choice outcome, paired: each condition's count, the discordant split and its p-value."""
    return (
        f"{what}: A {p.a_successes}, B {p.b_successes} of {p.scenes}; A only {p.a_only}, B only {p.b_only}, "
        f"McNemar exact two-sided p = {p.p_value:.3g}"
    )


def report(p: Paired, unpaired: dict[str, int], choice: str | None = None) -> str:
    lines = [
        f"A: {p.a}: {p.a_successes}/{p.scenes} = {100 * p.a_successes / p.scenes:.1f}%",
        f"B: {p.b}: {p.b_successes}/{p.scenes} = {100 * p.b_successes / p.scenes:.1f}%",
        f"paired on {p.scenes} scenes: both succeed {p.both}, A only {p.a_only}, B only {p.b_only}, "
        f"neither {p.neither}",
        f"difference B - A: {100 * (p.b_successes - p.a_successes) / p.scenes:+.1f} points; "
        f"McNemar exact two-sided p = {p.p_value:.3g}",
        *([choice] if choice else []),
    ]
    lines += [
        f"note: {n} trial(s) of {which} have no counterpart and are left out" for which, n in unpaired.items() if n
    ]
    return "\n".join(lines)


def compare(a_path: str | Path, b_path: str | Path, a_pick: str | None = None, b_pick: str | None = None) -> str:
    a = select(load_trials(a_path), a_pick, str(a_path))
    b = select(load_trials(b_path), b_pick, str(b_path))
    p = pair(a, b)
    measure = recorded_choice((*a, *b))
    choice = None
    if measure is not None:
        choice = choice_line(measure.description, pair(a, b, measure.hit))
    return report(p, {"A": len(a) - p.scenes, "B": len(b) - p.scenes}, choice)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="compare_evals", description=__doc__.split("\n")[0])
    parser.add_argument("a", help="evaluate --out directory (or its results.json) of condition A")
    parser.add_argument("b", help="the same for condition B; may be the same file as A with --a / --b")
    parser.add_argument("--a", dest="a_pick", help="A's condition, by part of its name, when the file holds several")
    parser.add_argument("--b", dest="b_pick", help="B's condition, likewise")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        print(compare(args.a, args.b, args.a_pick, args.b_pick))
    except CompareError as exc:
        print(f"compare_evals: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
