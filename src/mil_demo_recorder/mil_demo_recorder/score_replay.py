"""``score_replay``: offline one-shot scoring on recorded demos, no robot needed.

    score_replay --checkpoint runs/mil/final data/teleop --out eval/replay

For every task with at least two usable demos the policy (:class:`mil_policy.runner.PolicyRunner`, the
same runtime the policy node uses) adapts to one demo of the task, then is shown each other demo of the
task frame by frame, at the steps it was trained to act on, and its actions are compared with the
actions the operator recorded there: mean squared error and cosine similarity per held-out demo,
averaged per task. This measures imitation of real teleop data where no sim can replay the scene;
closed-loop success needs the robot (or ``evaluate`` in the sim). Writes ``scores.json``, a table
(``scores.txt``, also printed) and ``scores.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mil_policy.dataset import find_bags
from mil_policy.demo_arrays import latest_image_index, subsample_indices
from mil_policy.runner import PolicyRunner
from mil_sim.core import Episode
from mil_sim.demo_bag import DemoBagError, read_episode, read_task_metadata

MIN_NORM = 1e-6  # twists shorter than this have no direction: left out of the cosine similarity


@dataclass
class DemoScore:
    path: str
    mse: float
    cosine: float  # NaN when no step had both actions non-zero
    steps: int


@dataclass
class TaskScore:
    task_id: str
    adapt_demo: str
    demos: list[DemoScore] = field(default_factory=list)

    @property
    def mse(self) -> float:
        return float(np.mean([d.mse for d in self.demos])) if self.demos else float("nan")

    @property
    def cosine(self) -> float:
        values = [d.cosine for d in self.demos if np.isfinite(d.cosine)]
        return float(np.mean(values)) if values else float("nan")


def action_scores(predicted: np.ndarray, recorded: np.ndarray) -> tuple[float, float]:
    """(MSE over all steps and dimensions, mean cosine similarity over steps where both move)."""
    mse = float(np.mean((predicted - recorded) ** 2))
    pn, rn = np.linalg.norm(predicted, axis=1), np.linalg.norm(recorded, axis=1)
    ok = (pn > MIN_NORM) & (rn > MIN_NORM)
    cos = np.sum(predicted[ok] * recorded[ok], axis=1) / (pn[ok] * rn[ok])
    return mse, float(np.mean(cos)) if ok.any() else float("nan")


def score_demo(runner: PolicyRunner, episode: Episode) -> tuple[float, float, int]:
    """Run the adapted policy along a recorded demo (its camera frames and states) and compare actions."""
    steps = subsample_indices(len(episode), runner.horizon)
    runner.reset()
    predicted = []
    for i in steps:
        frame = episode.images[latest_image_index(episode.image_times, float(episode.times[i]))]
        predicted.append(runner.act(frame, episode.states[i]))
    mse, cos = action_scores(np.stack(predicted), episode.actions[steps].astype(np.float32))
    return mse, cos, len(steps)


def group_by_task(root: Path, family: str) -> tuple[dict[str, list[Path]], list[dict[str, str]]]:
    """Bags of ``family`` under ``root`` by task id (metadata only), and the ones that could not be read."""
    tasks: dict[str, list[Path]] = {}
    skipped = []
    for bag in find_bags(root, family):
        try:
            meta = read_task_metadata(bag)
        except DemoBagError as exc:
            skipped.append({"path": str(bag), "reason": str(exc)})
            continue
        if meta["family"] == family:
            tasks.setdefault(meta["task_id"], []).append(bag)
    return tasks, skipped


def score_all(runner: PolicyRunner, root: Path, max_demos: int | None = None) -> tuple[list[TaskScore], list[dict]]:
    """Adapt on the first usable demo of each task, score on the others (up to ``max_demos``)."""
    tasks, skipped = group_by_task(root, runner.family.name)
    results = []
    for task_id in sorted(tasks):
        bags = sorted(tasks[task_id])
        adapt = None
        for k, bag in enumerate(bags):
            try:
                runner.adapt(runner.load_demo(bag))
                adapt = k
                break
            except ValueError as exc:  # RunnerError / DemoBagError: try the next demo for adaptation
                skipped.append({"path": str(bag), "reason": f"cannot adapt: {exc}"})
        if adapt is None:
            continue
        score = TaskScore(task_id, _rel(bags[adapt], root))
        for bag in bags[adapt + 1 :][:max_demos]:
            try:
                mse, cos, n = score_demo(runner, read_episode(bag))
            except ValueError as exc:
                skipped.append({"path": str(bag), "reason": str(exc)})
                continue
            score.demos.append(DemoScore(_rel(bag, root), mse, cos, n))
        if score.demos:
            results.append(score)
        else:
            skipped.append({"path": task_id, "reason": "no held-out demo to score (needs >= 2 usable demos)"})
    return results, skipped


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def format_table(results: Sequence[TaskScore]) -> str:
    head = f"{'task':<34} {'held-out':>8} {'MSE':>10} {'cosine':>7}  adapted on"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.task_id:<34} {len(r.demos):>8} {r.mse:>10.5f} {r.cosine:>7.3f}  {r.adapt_demo}")
    if results:
        mse = np.mean([r.mse for r in results])
        cos = np.nanmean([r.cosine for r in results]) if any(np.isfinite(r.cosine) for r in results) else np.nan
        lines.append(f"{'mean over ' + str(len(results)) + ' tasks':<34} {'':>8} {mse:>10.5f} {cos:>7.3f}")
    return "\n".join(lines)


def plot(results: Sequence[TaskScore], path: Path) -> None:
    """Two bar charts per task: action MSE and cosine similarity to the recorded actions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.task_id for r in results]
    x = np.arange(len(results))
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 0.6 * len(results) + 3), 3.6))
    axes[0].bar(x, [r.mse for r in results], color="tab:red")
    axes[0].set_title("action MSE vs recorded (lower is better)")
    axes[1].bar(x, [r.cosine for r in results], color="tab:blue")
    axes[1].set_ylim(-1, 1)
    axes[1].axhline(0, color="k", lw=0.5)
    axes[1].set_title("cosine similarity (higher is better)")
    for ax in axes:
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(out: Path, results: Sequence[TaskScore], skipped: list[dict], info: dict[str, Any]) -> str:
    out.mkdir(parents=True, exist_ok=True)
    table = format_table(results)
    doc = {
        **info,
        "tasks": [{**asdict(r), "mse": r.mse, "cosine": r.cosine} for r in results],
        "skipped": skipped,
    }
    (out / "scores.json").write_text(json.dumps(_finite(doc), indent=1, allow_nan=False) + "\n")
    (out / "scores.txt").write_text(table + "\n")
    if results:
        plot(results, out / "scores.png")
    return table


def _finite(obj: Any) -> Any:
    """NaN (no cosine where nothing moved) as null: strict JSON for other tools."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="score_replay", description=__doc__.splitlines()[0])
    p.add_argument("demos", type=Path, help="directory of demo bags (recorder dataset_dir or generated demos)")
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint directory (safetensors + config)")
    p.add_argument("--out", type=Path, default=Path("eval/replay"), help="where scores.json/.txt/.png go")
    p.add_argument(
        "--demo-inputs",
        choices=("full", "no_actions", "video_only"),
        help="what the adaptation demo provides (default: the checkpoint's)",
    )
    p.add_argument("--max-demos", type=int, help="held-out demos scored per task (default: all)")
    p.add_argument("--device", default="cpu")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        runner = PolicyRunner(args.checkpoint, demo_inputs=args.demo_inputs, device=args.device)
    except (ValueError, OSError) as exc:
        print(f"score_replay: cannot load checkpoint {args.checkpoint}: {exc}", file=sys.stderr)
        return 2
    if not args.demos.is_dir():
        print(f"score_replay: {args.demos} is not a directory", file=sys.stderr)
        return 2
    results, skipped = score_all(runner, args.demos, args.max_demos)
    info = {
        "checkpoint": str(args.checkpoint),
        "demos": str(args.demos),
        "family": runner.family.name,
        "horizon": runner.horizon,
        "demo_inputs": runner.demo_inputs,
    }
    table = write_outputs(args.out, results, skipped, info)
    print(table)
    for s in skipped:
        print(f"skipped {s['path']}: {s['reason']}", file=sys.stderr)
    if not results:
        print("score_replay: no task had two usable demos; nothing scored", file=sys.stderr)
        return 1
    print(f"wrote {args.out / 'scores.json'}, {args.out / 'scores.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
