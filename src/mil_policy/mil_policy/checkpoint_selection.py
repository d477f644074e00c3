"""``select_checkpoint``: pick a run's checkpoint by closed-loop success on validation tasks.

    select_checkpoint runs/NAME [--split val] [--tasks 40] [--trials 2] [--workers 2] [--min-iteration N] [--every N]

``train`` keeps ``best/`` by validation *loss*. On placing that picked poorly twice (docs/results.md):
a run's validation-best was at chance while its last checkpoint, with a higher loss, read the demo
(9.7% against 21.7% on the test tasks), and training the H100 placing checkpoint on lowered the loss
while success fell from 35% to 15%. The loss is the imitation error on the demo's own frames; success is
what matters, so this tool rolls every snapshot (``train.snapshot_every``), ``best/`` and
``checkpoint/`` out in the sim on the family's *validation* split (objects in neither the training
demos nor the test split), writes ``RUN/best_success/`` (the chosen weights, with how they were chosen
in their config.json) and plots success against iteration beside the validation loss. The shipped
placing checkpoint was chosen so: 42.3% on the test tasks, against 31.0% for its run's validation-loss
best.

The chosen checkpoint's validation success is the best of several noisy estimates and so optimistic;
its unbiased figure is an ``evaluate --split test`` run. Selecting on the test split is refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mil_policy.checkpoint import read_checkpoint, read_checkpoint_config, save_checkpoint
from mil_policy.compare_evals import pair
from mil_policy.config import DEMO_INPUTS
from mil_policy.eval_report import ConditionSummary, TrialResult, format_table, summarize
from mil_policy.evaluate import (
    USER_ERRORS,
    EvalSettings,
    add_rollout_options,
    evaluate,
    make_variants,
    resolve_device,
    run_cli,
    write_evaluation,
)
from mil_policy.train import BEST, LATEST, SNAPSHOTS, snapshot_iterations
from mil_policy.train_log import CSV_NAME, read_metrics

BEST_SUCCESS = "best_success"
SELECTION = "selection"  # default --out under the run


class SelectionError(ValueError):
    """A selection that cannot run as asked (the message says what to change)."""


@dataclass(frozen=True)
class Candidate:
    """One checkpoint of the run: a snapshot, ``best/`` or ``checkpoint/``."""

    name: str  # iter_001000 / best / checkpoint
    path: Path
    iteration: int
    roles: tuple[str, ...] = ()  # best / checkpoint when those hold this iteration's weights

    @property
    def title(self) -> str:
        alias = [f"{r}/" for r in self.roles if r != self.name]
        return self.name + (f" (= {', '.join(alias)})" if alias else "")


@dataclass(frozen=True)
class Scored:
    candidate: Candidate
    summary: ConditionSummary


def find_candidates(run: Path, min_iteration: int = 0, every: int | None = None) -> list[Candidate]:
    """The run's snapshots, ``best/`` and ``checkpoint/`` in iteration order; a checkpoint of an iteration
    a snapshot holds is the same weights, evaluated once under the snapshot (which takes its role).
    ``every``: only snapshots at multiples of it (``best/`` and ``checkpoint/`` always), to thin a dense run."""
    if not run.is_dir():
        raise SelectionError(f"{run}: no such run directory")
    by_iteration = {
        it: Candidate(d.name, d, it) for it, d in snapshot_iterations(run).items() if not every or it % every == 0
    }
    for name in (BEST, LATEST):
        path = run / name
        if not path.exists():
            continue
        _, extra = read_checkpoint_config(path)
        iteration = int(extra.get("iteration") or 0)
        held = by_iteration.get(iteration, Candidate(name, path, iteration))
        by_iteration[iteration] = dataclasses.replace(held, roles=(*held.roles, name))
    candidates = [by_iteration[i] for i in sorted(by_iteration) if i >= min_iteration]
    if not candidates:
        raise SelectionError(
            f"{run}: nothing to select from at iteration >= {min_iteration}: no {SNAPSHOTS}/iter_* (train with "
            f"--set train.snapshot_every=N), no {BEST}/, no {LATEST}/"
        )
    return candidates


def choose(scored: Sequence[Scored]) -> Scored:
    """Most successes; ties go to more trials ended at the target (the demo read), then to the nearer
    median miss, then to the later iteration (more training behind the same success)."""
    if not scored:
        raise SelectionError("no candidates were evaluated")

    def key(s: Scored) -> tuple[float, float, float, int]:
        r = s.summary
        chose = -1 if r.chose_target is None else r.chose_target
        median = float("inf") if r.median_target_distance is None else r.median_target_distance
        return (r.successes, chose, -median, s.candidate.iteration)

    return max(scored, key=key)


def paired_against(chosen: Scored, other: Scored, trials: Sequence[TrialResult]) -> str:
    """Chosen vs another candidate on the same validation scenes: counts and McNemar's exact p."""
    p = pair(*([t for t in trials if t.label == s.summary.label] for s in (chosen, other)))
    return (
        f"chosen vs {other.candidate.title}: {p.a_successes} vs {p.b_successes} of {p.scenes}; scenes only "
        f"the chosen solves {p.a_only}, only the other {p.b_only}, McNemar exact p = {p.p_value:.3g}"
    )


def plot_selection(scored: Sequence[Scored], chosen: Scored, metrics_csv: Path | None, path: Path, title: str) -> Path:
    """Validation success (Wilson interval) against iteration, with the run's validation loss beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    points = sorted(scored, key=lambda s: s.candidate.iteration)
    xs = [s.candidate.iteration for s in points]
    ys = [100 * s.summary.rate for s in points]
    err = [
        [100 * (s.summary.rate - s.summary.ci_low) for s in points],
        [100 * (s.summary.ci_high - s.summary.rate) for s in points],
    ]
    ax.errorbar(xs, ys, yerr=err, fmt="o-", capsize=3, color="C0", label="success on validation tasks (95% CI)")
    marks = {BEST: ("best/ (lowest val loss)", "s", "C2"), LATEST: ("checkpoint/ (last)", "D", "C3")}
    for s in points:
        for role in s.candidate.roles:
            label, marker, colour = marks[role]
            ax.plot(s.candidate.iteration, 100 * s.summary.rate, marker, ms=10, mfc="none", color=colour, label=label)
    ax.plot(chosen.candidate.iteration, 100 * chosen.summary.rate, "*", ms=16, color="C1", label="chosen")
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel("success (%)")
    ax.set_ylim(0, max(10.0, 100 * max(s.summary.ci_high for s in points) + 5))
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if metrics_csv is not None and metrics_csv.is_file():
        rows = read_metrics(metrics_csv)
        val = [(r["iteration"], r["val_loss"]) for r in rows if r["val_loss"] is not None]
        other = [(r["iteration"], r["val_other_demo"]) for r in rows if r["val_other_demo"] is not None]
        if val:
            ax2 = ax.twinx()
            ax2.plot(*zip(*val, strict=True), "-", color="0.5", lw=1, label="validation loss (own demo)")
            if other:
                ax2.plot(*zip(*other, strict=True), "--", color="0.7", lw=1, label="validation loss (other demo)")
            ax2.set_ylabel("validation loss")
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, fontsize=8, loc="best")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_chosen(run: Path, chosen: Scored, selection: dict[str, Any]) -> Path:
    """``RUN/best_success``: the chosen weights and config, their training metadata and the selection."""
    weights, config, extra = read_checkpoint(chosen.candidate.path)
    return save_checkpoint(run / BEST_SUCCESS, weights, config, {**extra, "selection": selection})


def select(
    run: Path,
    settings: EvalSettings,
    demo_inputs: str | None = None,
    family_config: dict[str, Any] | None = None,
    min_iteration: int = 0,
    every: int | None = None,
    progress: bool = True,
) -> tuple[Scored, list[Scored], list[TrialResult]]:
    """Evaluate every candidate of ``run`` on the same validation scenes and write the outputs."""
    if settings.split == "test":
        raise SelectionError(
            "selecting on the test split would make its success an optimistic, reused estimate: select on "
            "--split val, then evaluate the chosen checkpoint on test"
        )
    candidates = find_candidates(run, min_iteration, every)
    variants = make_variants(
        [str(c.path) for c in candidates],
        demo_inputs=[demo_inputs] if demo_inputs else [],
        family_config=family_config,
    )
    if len({v.family for v in variants}) > 1:
        raise SelectionError(f"{run}: its checkpoints are for different families")
    trials = evaluate(variants, settings, progress=progress)
    rows = {r.label: r for r in summarize(trials)}
    scored = [Scored(c, rows[v.label]) for c, v in zip(candidates, variants, strict=True)]
    chosen = choose(scored)
    selection = {
        "chosen": chosen.candidate.name,
        "iteration": chosen.candidate.iteration,
        "split": settings.split,
        "tasks": settings.tasks,
        "trials": settings.trials,
        "seed": settings.seed,
        "shots": settings.shots[0],
        "successes": chosen.summary.successes,
        "of": chosen.summary.trials,
        "candidates": [
            {
                "name": s.candidate.name,
                "roles": list(s.candidate.roles),
                "iteration": s.candidate.iteration,
                "successes": s.summary.successes,
                "trials": s.summary.trials,
                "chose_target": s.summary.chose_target,
                "moved_target": s.summary.moved_target,
            }
            for s in scored
        ],
    }
    out = settings.out or run / SELECTION
    write_evaluation(out, settings, variants, list(rows.values()), trials, {"selection": selection})
    title = f"{run.name}: {variants[0].family}, {settings.tasks} {settings.split} tasks x {settings.trials}"
    plot_selection(scored, chosen, run / CSV_NAME, out / "selection.png", title)
    write_chosen(run, chosen, selection)
    return chosen, scored, trials


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="select_checkpoint",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Writes RUN/best_success/ and, under --out (default RUN/selection): results.json (readable by "
        "compare_evals), results.csv, trials.csv and selection.png.",
    )
    p.add_argument("run", type=Path, help="a train --out directory")
    p.add_argument("--split", default="val", help="task split to select on (default: val; test is refused)")
    p.add_argument("--tasks", type=int, default=40, help="first N tasks of the split (default: 40)")
    p.add_argument("--trials", type=int, default=2, help="trials per task (default: 2)")
    p.add_argument("--shots", type=int, default=1, help="demos per task (default: 1)")
    p.add_argument("--demo-inputs", choices=DEMO_INPUTS, help="what the demo provides (default: as trained)")
    p.add_argument("--min-iteration", type=int, default=0, help="leave out checkpoints before this iteration")
    p.add_argument("--every", type=int, default=None, metavar="N", help="only snapshots at multiples of N")
    p.add_argument("--out", type=Path, default=None, help="where the evaluation goes (default: RUN/selection)")
    add_rollout_options(p)
    return p


def _main(args: argparse.Namespace) -> int:
    if min(args.tasks, args.trials, args.shots, args.workers, 1 if args.every is None else args.every) < 1:
        raise SelectionError("--tasks, --trials, --shots, --workers and --every must be at least 1")
    if args.family_config is not None and not isinstance(args.family_config, dict):
        raise SelectionError("--family-config must be a JSON object")
    out = args.out or args.run / SELECTION
    settings = EvalSettings(
        tasks=args.tasks,
        trials=args.trials,
        shots=(args.shots,),
        split=args.split,
        seed=args.seed,
        expert_noise=args.expert_noise,
        out=out,
        workers=args.workers,
        device=resolve_device(args.device),
    )
    chosen, scored, trials = select(
        args.run, settings, args.demo_inputs, args.family_config, args.min_iteration, args.every, not args.no_progress
    )
    print(format_table([s.summary for s in scored]))
    print(
        f"\nchosen: {chosen.candidate.title}, iteration {chosen.candidate.iteration}, "
        f"{chosen.summary.successes}/{chosen.summary.trials} on {args.split}; written to {args.run / BEST_SUCCESS}"
    )
    for other in scored:
        if other is not chosen and other.candidate.roles:
            print(paired_against(chosen, other, trials))
    print(
        "the chosen success is the best of several estimates (optimistic): evaluate "
        f"{args.run / BEST_SUCCESS} on --split test for its figure; plot {out / 'selection.png'}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("select_checkpoint", build_parser().parse_args(argv), _main, (*USER_ERRORS, SelectionError))


if __name__ == "__main__":
    sys.exit(main())
