"""Does a policy fail where it was trained, or only where its own mistakes take it? Closed-loop drift.

Behaviour cloning learns actions on the states the expert visits. Closed loop, the policy's own errors
take it to states no demo showed, where nothing taught it what to do (covariate shift, Ross et al. 2011);
and where an input that reflects the expert's last action is available, e.g. joint velocities under
torque control, the policy can learn to continue the ongoing motion instead of reading the scene (the
"copycat" shortcut, Wen et al. 2020): exact on the expert's path, where the motion is the expert's,
and passive off it, where nothing is moving yet. An offline loss sees neither.

Every simulated family has a scripted expert that acts from the true scene at any state, so it can say
what it would do on the states the policy reaches (DAgger's relabelling). For each task, after adapting
the policy on one expert demo (as ``evaluate`` does), two rollouts of the same trial (same scene):

* **expert's path**: the expert drives, the policy is asked at each of its acting steps;
* **policy's path**: the policy drives, the expert (a fresh one, noise-free) is asked at the same steps.

Both are :class:`~mil_sim.perturbation.PolicyTakeover` rollouts, the ones ``dagger`` turns into training
data. Small error on the expert's path and large on its own means a policy that fits its data and does not
recover; the action sizes on the policy's path tell a passive policy (small actions where the expert
asks for large) from a runaway one. ``drift --checkpoint RUN/best --split train --tasks 4`` prints both
by phase of the episode; ``--json`` and ``--plot`` save them.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mil_policy.checkpoint import CheckpointError
from mil_policy.config import ConfigError
from mil_policy.diagnose import print_and_save
from mil_policy.evaluate import EvalSettings, EvaluationError, make_demos, trial_seeds
from mil_policy.runner import PolicyRunner, RunnerError
from mil_sim.core import Env, TaskFamily
from mil_sim.perturbation import Act, PolicyTakeover
from mil_sim.rollout import run_episode


@dataclass
class PathErrors:
    """Per acting step of one trial (all arrays have one entry per step at which the policy acts)."""

    on_path_error: np.ndarray  # |policy - expert|^2 (summed over action dims) on the expert's states
    off_path_error: np.ndarray  # the same on the policy's own states
    expert_size_on: np.ndarray  # |expert action|^2 on the expert's path
    policy_size_off: np.ndarray  # |policy action|^2 on its own path
    expert_size_off: np.ndarray  # |expert action|^2 the expert asks for on the policy's path
    success: bool  # the policy's own rollout succeeded
    by_dim: dict[str, np.ndarray]  # BY_DIM name -> (A,) squared values per action dim, mean over steps


@dataclass
class Drift:
    """Means over trials, per acting step; JSON-serialisable (``--json``)."""

    checkpoint: str
    split: str
    tasks: int
    acting_steps: list[int]
    on_path_error: list[float]
    off_path_error: list[float]
    expert_size_on: list[float]
    policy_size_off: list[float]
    expert_size_off: list[float]
    successes: int
    by_dim: dict[str, list[float]]  # per action dimension, mean over trials and acting steps


# Per action dimension: which entries of the action the error is in (a tool twist mixes m/s and rad/s),
# how often the expert asks for the limit there and how often its large commands reverse: a saturated,
# reversing expert is a bang-bang label, whose sign a policy must get right with no graded signal.
BY_DIM = (
    "expert path error",
    "policy path error",
    "|expert|^2 on policy path",
    "|policy|^2 own path",
    "expert at limit, its path",
    "expert at limit, policy path",
    "expert reversals, its path",
    "expert reversals, policy path",
)


def at_limit_share(actions: Sequence[np.ndarray], limits: np.ndarray) -> np.ndarray:
    """Per dimension, the share of ``actions`` at (within 1% of) the family's action limit."""
    return np.mean(np.abs(np.stack(actions)) >= 0.99 * np.asarray(limits), axis=0)


def reversals(actions: Sequence[np.ndarray], limits: np.ndarray, floor: float = 0.25) -> np.ndarray:
    """Per dimension, how often the sign of ``actions`` flips over the episode, counting only entries of
    at least ``floor`` x the limit (a label that swings from one large command to its opposite, not one
    dithering about zero)."""
    a = np.stack(actions)
    flips = []
    for j in range(a.shape[1]):
        signs = np.sign(a[np.abs(a[:, j]) >= floor * limits[j], j])
        flips.append(float(np.count_nonzero(signs[1:] != signs[:-1])))
    return np.asarray(flips)


def path_errors(
    family: TaskFamily,
    make_env: Callable[[], Env],
    policy_reset: Callable[[], None],
    act: Act,
    acting_steps: Sequence[int],
    expert_seed: int,
) -> PathErrors:
    """Both rollouts of one trial. ``make_env`` must build the same scene each call (same trial seed).

    Each is a :class:`~mil_sim.perturbation.PolicyTakeover` rollout, DAgger's data collection: the
    expert is asked at every control step (its phase logic follows the scene) and drives all of the
    first (``beta = 1``), the policy all of the second (``beta = 0``), holding its action between acting
    steps as in ``evaluate``.
    """

    def run(beta: float) -> tuple[list[np.ndarray], list[np.ndarray], bool]:
        env = make_env()
        try:
            expert = family.make_expert(env, expert_seed, 0.0)  # before reset, as run_episode has it
            takeover = PolicyTakeover(env, act, acting_steps, beta, seed=0, reset=policy_reset)
            episode = run_episode(family, env, expert, record_images=False, perturb=takeover)
        finally:
            env.close()
        steps = sorted(takeover.proposed)
        return [takeover.proposed[i] for i in steps], [episode.targets[i] for i in steps], episode.success

    pol_on, exp_on, _ = run(beta=1.0)
    pol_off, exp_off, success = run(beta=0.0)

    def sq(a: list[np.ndarray]) -> np.ndarray:
        return np.sum(np.square(np.stack(a)), axis=-1)

    def per_dim(a: list[np.ndarray]) -> np.ndarray:
        return np.mean(np.square(np.stack(a)), axis=0)

    on_diff = [p - e for p, e in zip(pol_on, exp_on, strict=True)]
    off_diff = [p - e for p, e in zip(pol_off, exp_off, strict=True)]
    limits = family.action_limits
    per_dim_values = [
        *map(per_dim, (on_diff, off_diff, exp_off, pol_off)),
        at_limit_share(exp_on, limits),
        at_limit_share(exp_off, limits),
        reversals(exp_on, limits),
        reversals(exp_off, limits),
    ]
    return PathErrors(
        on_path_error=sq(on_diff),
        off_path_error=sq(off_diff),
        expert_size_on=sq(exp_on),
        policy_size_off=sq(pol_off),
        expert_size_off=sq(exp_off),
        success=success,
        by_dim=dict(zip(BY_DIM, per_dim_values, strict=True)),
    )


def measure_drift(runner: PolicyRunner, checkpoint: str, split: str, tasks: int, seed: int) -> Drift:
    """Adapt on one expert demo per task (evaluate's demo and trial seeds), then both rollouts of its
    first evaluation trial."""
    family = runner.family
    split_tasks = family.tasks(split)
    if not 1 <= tasks <= len(split_tasks):
        raise EvaluationError(f"--tasks {tasks}: the {split} split has {len(split_tasks)} tasks")
    settings = EvalSettings(tasks=tasks, trials=1, split=split, seed=seed)
    trials: list[PathErrors] = []
    for task_index in tqdm(range(tasks), desc="drift", unit="task", file=sys.stderr):
        task = split_tasks[task_index]
        trial_seed = trial_seeds(seed, task_index, 1)[0]
        demos = make_demos(family, task_index, 1, settings, avoid={trial_seed})
        runner.adapt(runner.demo_of(demos))
        trials.append(
            path_errors(
                family,
                lambda task=task, trial_seed=trial_seed: family.make_env(task, trial_seed, render=True),
                runner.reset,
                runner.act,
                runner.policy_steps,
                expert_seed=trial_seed,
            )
        )

    def mean(name: str) -> list[float]:
        return [round(float(v), 6) for v in np.mean([getattr(t, name) for t in trials], axis=0)]

    return Drift(
        checkpoint=checkpoint,
        split=split,
        tasks=tasks,
        acting_steps=[int(i) for i in runner.policy_steps],
        on_path_error=mean("on_path_error"),
        off_path_error=mean("off_path_error"),
        expert_size_on=mean("expert_size_on"),
        policy_size_off=mean("policy_size_off"),
        expert_size_off=mean("expert_size_off"),
        successes=sum(t.success for t in trials),
        by_dim={k: [round(float(v), 6) for v in np.mean([t.by_dim[k] for t in trials], axis=0)] for k in BY_DIM},
    )


def phases(n: int, count: int = 4) -> list[tuple[int, int]]:
    """``count`` consecutive, near-equal index ranges covering ``range(n)``."""
    edges = np.linspace(0, n, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


def report(d: Drift) -> str:
    """A table by episode phase: the error on each path beside the action sizes that scale it."""
    steps = d.acting_steps
    rows = [
        f"{d.checkpoint}: {d.tasks} {d.split} tasks, one trial each; policy succeeded in {d.successes}/{d.tasks}",
        "squared action error (summed over action dims), mean over trials and the phase's acting steps:",
        f"{'control steps':>14}  {'expert path':>11}  {'policy path':>11}  "
        f"{'|expert|^2':>10}  {'|policy|^2 own':>14}  {'|expert|^2 there':>16}",
    ]
    for a, b in phases(len(steps)):

        def m(name: str, a: int = a, b: int = b) -> str:
            return f"{np.mean(getattr(d, name)[a:b]):.4f}"

        span = f"{steps[a]}-{steps[b - 1]}"
        rows.append(
            f"{span:>14}  {m('on_path_error'):>11}  {m('off_path_error'):>11}  {m('expert_size_on'):>10}  "
            f"{m('policy_size_off'):>14}  {m('expert_size_off'):>16}"
        )
    on, off = np.mean(d.on_path_error), np.mean(d.off_path_error)
    rows.append(f"all steps: expert's path {on:.4f}, policy's path {off:.4f} ({off / max(on, 1e-12):.1f}x)")
    rows.append("by action dimension, mean over all steps:")
    rows.append(f"{'dim':>5}  " + "  ".join(f"{k:>28}" for k in BY_DIM))
    for j in range(len(d.by_dim[BY_DIM[0]])):
        rows.append(f"{j:>5}  " + "  ".join(f"{d.by_dim[k][j]:>28.4f}" for k in BY_DIM))
    return "\n".join(rows)


def plot(d: Drift, path: Path) -> None:
    """Per-step errors on both paths and the expert's action size, one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    ax.plot(d.acting_steps, d.on_path_error, label="error on the expert's path")
    ax.plot(d.acting_steps, d.off_path_error, label="error on the policy's own path")
    ax.plot(d.acting_steps, d.expert_size_on, ":", color="grey", label="|expert action|^2 (expert's path)")
    ax.plot(d.acting_steps, d.policy_size_off, "--", label="|policy action|^2 (own path)")
    ax.set_xlabel("control step")
    ax.set_ylabel("squared action error / size")
    ax.set_title(f"{Path(d.checkpoint).parent.name}/{Path(d.checkpoint).name}: {d.tasks} {d.split} tasks")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint directory (model.safetensors + config.json)")
    p.add_argument("--split", default="test", help="task split (default test; train: tasks it learned from)")
    p.add_argument("--tasks", type=int, default=4, help="first N tasks of the split, one trial each (default 4)")
    p.add_argument("--seed", type=int, default=0, help="evaluate's seed: same demos and trials (default 0)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", type=Path, help="also write the per-step means as JSON")
    p.add_argument("--plot", type=Path, help="also plot them (PNG)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        runner = PolicyRunner(args.checkpoint)
        result = measure_drift(runner, args.checkpoint, args.split, args.tasks, args.seed)
    except (CheckpointError, ConfigError, EvaluationError, RunnerError, ValueError) as exc:
        print(f"drift: {exc}", file=sys.stderr)
        return 2
    print_and_save(report(result), result, args.json)
    if args.plot is not None:
        plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
