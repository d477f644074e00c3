"""Can the scripted expert be cloned at all? Behaviour cloning from the state alone, without images.

When every image policy fails closed loop (pushing, docs/results.md), the question is whether the
learner, the data or the expert is to blame. This takes the images and meta-learning out: an MLP is
cloned on the state of the expert's demos (with ``privileged_state`` the pushing state carries the true
target and goal positions, so the state says everything the task needs) and rolled out closed loop on
new scenes of the same tasks. No rendering, so a run takes minutes, not the image runs' 40.

Options test what the image runs cannot afford to: ``--raw-state`` feeds the state unstandardised, as
the MIL network did before ``network.normalise_state``; ``--dagger-rounds`` adds rollouts the MLP
drove, labelled by the (noise-free) expert at every step, and refits (Ross et al. 2011); ``--steps``
sets how closely the MLP fits. Each fit also reports ``drift``'s two errors on the test scenes (squared
action error summed over the action dimensions, mean over steps, on the noise-free expert's path and on
the MLP's own), so a state MLP's fit can be set beside an image checkpoint's ``drift`` figures.

    clone_state --family pushing --family-config '{"privileged_state": true}' --tasks 8 --demos-per-task 20
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from mil_policy.dataset import standardisation
from mil_policy.eval_report import wilson_interval
from mil_policy.network import StateNormaliser
from mil_sim.core import TaskError, TaskFamily
from mil_sim.families import get_family
from mil_sim.rollout import run_episode

StateAct = Callable[[np.ndarray], np.ndarray]  # (S,) state -> (A,) action
EVAL_SEED_OFFSET = 1_000_000  # evaluation scenes never repeat a demo's (trial seeds 1000 * task + k)


@dataclass
class Rollouts:
    """States and expert labels of a set of rollouts, and how many succeeded."""

    states: np.ndarray  # (N, S) every control step of every rollout
    labels: np.ndarray  # (N, A) the expert's action at that step
    successes: int
    episodes: int
    episode_of: np.ndarray | None = None  # (N,) which rollout each step belongs to (numbered from 0)
    task_of: np.ndarray | None = None  # (N,) the task of that rollout


@dataclass
class Stage:
    """One fit and its closed-loop test (the initial fit, then one per DAgger round)."""

    name: str
    training_samples: int
    final_loss: float  # mean squared error in units of the action scale (the limits unless raw), last minibatch
    successes: int
    trials: int
    interval: tuple[float, float]
    collected_successes: int | None = None  # DAgger: the MLP-driven rollouts that succeeded
    # ``drift``'s errors on the test scenes: |MLP action - expert label|^2 summed over action dimensions,
    # mean over control steps, where the noise-free expert drives / where the MLP drives.
    expert_path_error: float = float("nan")
    policy_path_error: float = float("nan")


@dataclass
class CloningResult:
    family: str
    family_config: dict[str, object]
    standardised: bool
    tasks: int
    demos_per_task: int
    expert_successes: int
    stages: list[Stage] = field(default_factory=list)
    raw_actions: bool = False
    steps: int = 0
    seed: int = 0
    frames_per_demo: int | None = None  # None: minibatches of 256 steps drawn from all rollouts


class StateMlp(nn.Module):
    """(S,) state -> (A,) action in units of the action scale, through two hidden ReLU layers."""

    def __init__(
        self, state_dim: int, action_dim: int, hidden: int, mean: list[float] | None, std: list[float] | None
    ) -> None:
        super().__init__()
        self.normalise_state = StateNormaliser(mean, std)
        self.layers = nn.Sequential(
            nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, action_dim)
        )

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.layers(self.normalise_state(states))


def collect(
    family: TaskFamily,
    task_indices: Sequence[int],
    per_task: int,
    seed_offset: int,
    act: StateAct | None = None,
    expert_noise: float | None = None,
) -> Rollouts:
    """Rollouts on the train split's tasks ``task_indices``, ``per_task`` scenes each. Without ``act`` the
    expert drives (with its demo noise, as ``generate_demos``, unless ``expert_noise`` says otherwise);
    with it ``act`` drives and a noise-free expert labels every step (DAgger's data, ``drift``'s policy
    path)."""
    tasks = family.tasks("train")
    if expert_noise is None:
        expert_noise = 1.0 if act is None else 0.0
    states, labels, successes, tasks_of = [], [], 0, []
    for ti in task_indices:
        for k in range(per_task):
            trial_seed = seed_offset + 1000 * ti + k
            env = family.make_env(tasks[ti], trial_seed, render=False)
            try:
                expert = family.make_expert(env, trial_seed, expert_noise)
                drive = None if act is None else (lambda obs, _label: act(obs.state))
                episode = run_episode(family, env, expert, record_images=False, perturb=drive)
            finally:
                env.close()
            states.append(episode.states)
            labels.append(episode.targets)
            tasks_of.append(np.full(len(episode.states), ti))
            successes += bool(episode.success)
    episode_of = np.concatenate([np.full(len(s), e) for e, s in enumerate(states)])
    n = len(task_indices) * per_task
    return Rollouts(np.concatenate(states), np.concatenate(labels), successes, n, episode_of, np.concatenate(tasks_of))


def rollout_steps(data: Rollouts) -> list[list[np.ndarray]]:
    """Per task, per rollout of it, that rollout's step indices: what ``mil_shaped_batch`` draws from,
    grouped once per fit rather than at every Adam step."""
    if data.episode_of is None or data.task_of is None:
        raise ValueError("these rollouts do not say which episode and task each step belongs to")
    return [
        [np.flatnonzero(data.episode_of == episode) for episode in np.unique(data.episode_of[data.task_of == task])]
        for task in np.unique(data.task_of)
    ]


def mil_shaped_batch(steps_of: list[list[np.ndarray]], frames_per_demo: int, rng: np.random.Generator) -> np.ndarray:
    """Sample indices shaped like a MIL meta-batch's evaluation half: one rollout of each task, and
    ``frames_per_demo`` of its steps (all of them if it has fewer). ``steps_of``: ``rollout_steps``."""
    picked = []
    for rollouts in steps_of:
        steps = rollouts[rng.choice(len(rollouts))]
        picked.append(rng.choice(steps, size=min(frames_per_demo, len(steps)), replace=False))
    return np.concatenate(picked)


def fit(
    data: Rollouts,
    scale: np.ndarray,
    *,
    standardise: bool,
    hidden: int,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    frames_per_demo: int | None = None,
) -> tuple[StateMlp, float]:
    """A fresh MLP fitted to ``data``'s labels divided by ``scale`` (the action limits, so every dimension counts
    alike); the state statistics are ``data``'s. Returns it and its last minibatch loss."""
    torch.manual_seed(seed)
    mean, std = standardisation(data.states) if standardise else (None, None)
    net = StateMlp(data.states.shape[1], data.labels.shape[1], hidden, mean, std)
    x = torch.as_tensor(data.states, dtype=torch.float32)
    y = torch.as_tensor(data.labels / scale, dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    steps_of = None if frames_per_demo is None else rollout_steps(data)
    loss = torch.zeros(())
    for _ in range(steps):
        if steps_of is None:
            idx = torch.randint(0, len(x), (batch,), generator=g)
        else:
            idx = torch.as_tensor(mil_shaped_batch(steps_of, frames_per_demo, rng))
        loss = ((net(x[idx]) - y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net, float(loss.detach())


def as_policy(net: StateMlp, family: TaskFamily, scale: np.ndarray | None = None) -> StateAct:
    """The MLP as a policy: its output times ``scale`` (default the action limits), clipped to them."""
    limits = torch.as_tensor(family.action_limits if scale is None else scale, dtype=torch.float32)

    @torch.no_grad()
    def act(state: np.ndarray) -> np.ndarray:
        out = net(torch.as_tensor(np.asarray(state, np.float32))) * limits
        return family.clip_action(out.numpy()).astype(np.float32)

    return act


def path_error(act: StateAct, data: Rollouts) -> float:
    """``drift``'s measure: |act(state) - label|^2 summed over the action dimensions, mean over steps."""
    actions = np.stack([act(state) for state in data.states])
    return float(np.mean(np.sum(np.square(actions - data.labels), axis=-1)))


def merge(a: Rollouts, b: Rollouts) -> Rollouts:
    known = a.episode_of is not None and b.episode_of is not None and a.task_of is not None and b.task_of is not None
    return Rollouts(
        np.concatenate([a.states, b.states]),
        np.concatenate([a.labels, b.labels]),
        a.successes + b.successes,
        a.episodes + b.episodes,
        np.concatenate([a.episode_of, b.episode_of + a.episodes]) if known else None,
        np.concatenate([a.task_of, b.task_of]) if known else None,
    )


def clone_expert(
    family: TaskFamily,
    family_config: dict[str, object],
    *,
    tasks: int,
    demos_per_task: int,
    trials: int,
    standardise: bool = True,
    raw_actions: bool = False,
    dagger_rounds: int = 0,
    hidden: int = 256,
    steps: int = 4000,
    batch: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    frames_per_demo: int | None = None,
    progress: bool = True,
) -> CloningResult:
    """Clone the expert from ``demos_per_task`` demos of the first ``tasks`` training tasks and test
    closed loop on ``trials`` new scenes of each; each DAgger round adds ``demos_per_task // 2`` MLP-driven
    rollouts per task (at least one) and refits from scratch on everything. With ``frames_per_demo`` each
    Adam step sees what a MIL meta-iteration's evaluation half shows the policy: one rollout of each task
    and that many of its steps."""
    indices = list(range(tasks))
    # Units of the action limits weigh each dimension by how far it can go; raw units weigh them as the
    # MIL presets' loss does (without maml.action_weights), where a dimension the controller ignores (the
    # tool's turn when it is held upright) counts as much as the tip's velocity.
    scale = np.ones(family.action_dim) if raw_actions else np.asarray(family.action_limits)
    stages_total = 1 + dagger_rounds
    bar = tqdm(total=2 * stages_total, desc="clone_state", disable=not progress, unit="stage")
    data = collect(family, indices, demos_per_task, seed_offset=0)
    # The test scenes driven by the noise-free expert: where ``drift`` measures its expert-path error.
    expert_path = collect(family, indices, trials, seed_offset=EVAL_SEED_OFFSET, expert_noise=0.0)
    bar.update()
    result = CloningResult(
        family.name,
        family_config,
        standardise,
        tasks,
        demos_per_task,
        data.successes,
        [],
        raw_actions,
        steps,
        seed,
        frames_per_demo,
    )
    policy: StateAct | None = None  # the previous stage's fit, which drives the next DAgger round
    for stage in range(stages_total):
        collected = None
        if policy is not None:
            extra = collect(family, indices, max(1, demos_per_task // 2), seed_offset=stage * 100_000, act=policy)
            data, collected = merge(data, extra), extra.successes
            bar.update()
        net, loss = fit(
            data,
            scale,
            standardise=standardise,
            hidden=hidden,
            steps=steps,
            batch=batch,
            lr=lr,
            seed=seed,
            frames_per_demo=frames_per_demo,
        )
        policy = as_policy(net, family, scale)
        test = collect(family, indices, trials, seed_offset=EVAL_SEED_OFFSET, act=policy)
        bar.update()
        result.stages.append(
            Stage(
                name="cloning" if stage == 0 else f"DAgger round {stage}",
                training_samples=len(data.states),
                final_loss=loss,
                successes=test.successes,
                trials=test.episodes,
                interval=wilson_interval(test.successes, test.episodes),
                collected_successes=collected,
                expert_path_error=path_error(policy, expert_path),
                policy_path_error=path_error(policy, test),
            )
        )
    bar.close()
    return result


def report(result: CloningResult) -> str:
    state = "standardised" if result.standardised else "raw"
    units = "their own units" if result.raw_actions else "units of the action limits"
    batches = "256 steps" if result.frames_per_demo is None else f"{result.frames_per_demo} steps of a rollout per task"
    lines = [
        f"{result.family} {json.dumps(result.family_config)}: MLP on the {state} state, actions in {units}, "
        f"{result.steps} Adam steps of {batches}, seed {result.seed}; {result.tasks} training tasks x "
        f"{result.demos_per_task} demos (expert succeeded in {result.expert_successes}/"
        f"{result.tasks * result.demos_per_task})",
        f"{'stage':<16} {'samples':>8} {'loss':>9} {'closed loop (new scenes)':>32} "
        f"{'drift: expert path':>18} {'own path':>9}",
    ]
    for s in result.stages:
        lo, hi = s.interval
        rate = f"{s.successes}/{s.trials} = {100 * s.successes / s.trials:.1f}% [{100 * lo:.1f}%, {100 * hi:.1f}%]"
        extra = "" if s.collected_successes is None else f"  (its rollouts: {s.collected_successes} succeeded)"
        lines.append(
            f"{s.name:<16} {s.training_samples:>8} {s.final_loss:>9.5f} {rate:>32} "
            f"{s.expert_path_error:>18.4f} {s.policy_path_error:>9.4f}{extra}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", default="pushing", help="task family (default pushing)")
    p.add_argument("--family-config", default="{}", help="JSON overrides, e.g. '{\"privileged_state\": true}'")
    p.add_argument("--tasks", type=int, default=8, help="first N training tasks (default 8)")
    p.add_argument("--demos-per-task", type=int, default=20, help="expert demos per task (default 20)")
    p.add_argument("--trials", type=int, default=5, help="closed-loop test scenes per task (default 5)")
    p.add_argument("--raw-state", action="store_true", help="do not standardise the state")
    p.add_argument(
        "--raw-actions", action="store_true", help="fit the actions in their own units, not the action limits'"
    )
    p.add_argument("--dagger-rounds", type=int, default=0, help="DAgger rounds after the first fit (default 0)")
    p.add_argument("--hidden", type=int, default=256, help="units of each of the two hidden layers")
    p.add_argument("--steps", type=int, default=4000, help="Adam steps (minibatches of 256) per fit (default 4000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--frames-per-demo",
        type=int,
        help="each Adam step takes one rollout of each task and this many of its steps (a MIL meta-batch's shape)",
    )
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", type=Path, help="also write the result as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        overrides = json.loads(args.family_config)
        if not isinstance(overrides, dict):
            raise ValueError("--family-config must be a JSON object")
        for name in ("tasks", "demos_per_task", "trials", "hidden", "steps", "frames_per_demo"):
            if getattr(args, name) is not None and getattr(args, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive")
        if args.dagger_rounds < 0:
            raise ValueError("--dagger-rounds must be >= 0")
        family = get_family(args.family, **overrides)
        if args.tasks > len(family.tasks("train")):
            raise ValueError(f"--tasks {args.tasks}: the family has {len(family.tasks('train'))} training tasks")
        result = clone_expert(
            family,
            overrides,
            tasks=args.tasks,
            demos_per_task=args.demos_per_task,
            trials=args.trials,
            standardise=not args.raw_state,
            raw_actions=args.raw_actions,
            frames_per_demo=args.frames_per_demo,
            dagger_rounds=args.dagger_rounds,
            hidden=args.hidden,
            steps=args.steps,
            seed=args.seed,
            progress=not args.no_progress,
        )
    except (TaskError, ValueError, TypeError) as exc:
        print(f"clone_state: {exc}", file=sys.stderr)
        return 2
    print(report(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(result), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
