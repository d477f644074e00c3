"""DAgger with the scripted expert: roll the learned policy out, let the expert label the states it reaches.

``drift`` shows why: a cloned policy's error is small on the expert's states and large on its own, and
no demo shows what to do there (covariate shift). DAgger (Ross et al., AISTATS 2011) fixes the data,
not the learner: run the current policy (with probability ``--beta`` per acting step the expert drives
instead), record every state it reaches with the action the expert would take there, add those
rollouts to the training set, train on, repeat. Every simulated family's expert acts from the true
scene at any state, so it can label the policy's states; a teleoperator cannot, which is why this is a
sim-side tool.

For each of the first ``--tasks`` tasks of ``--split``, the policy adapts on one fresh expert demo (as in
``evaluate``), then runs ``--rollouts`` new scenes. Each rollout becomes a bag beside the task's
demos, ``DEMOS/<family>/<split>/<task>/demo_dagger<round>_<k>``: the applied commands on the action
topic, the expert's labels on the label topic, ``driven_by: policy`` in its metadata. Training uses it
only as the evaluation demo of a meta-batch row, never as the demo to adapt on (``mil_policy.dataset``).
Existing bags are kept (a re-run resumes). One round::

    dagger --checkpoint RUN/checkpoint --demos DEMOS --tasks 8 --rollouts 5 --round 1 --workers 2
    train --out RUN --demos DEMOS --resume --iterations N+1000   # continues on the grown dataset
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mil_policy.checkpoint import CheckpointError
from mil_policy.config import ConfigError
from mil_policy.evaluate import EvalSettings, EvaluationError, make_demos
from mil_policy.runner import PolicyRunner, RunnerError
from mil_sim.core import DRIVEN_BY, DRIVEN_BY_POLICY, Episode, Task, TaskError
from mil_sim.demo_bag import write_episode
from mil_sim.generate import DEMO_PREFIX, task_dirname, write_index
from mil_sim.perturbation import PolicyTakeover
from mil_sim.rollout import run_episode

SOURCE = "dagger"  # the bag's ``source``: a policy rollout with expert labels, not a demonstration
_DAGGER = 7  # role tag in the seed derivation, apart from generate's and evaluate's streams


@dataclass(frozen=True)
class Settings:
    tasks: int
    rollouts: int
    round: int
    beta: float
    split: str = "train"
    seed: int = 0


@dataclass
class Summary:
    """What rollouts came to: one task's (a worker process returns it) or, added up, the whole round's."""

    written: int = 0
    existing: int = 0
    successes: int = 0  # of the rollouts written now
    shares: list[float] = field(default_factory=list)  # fraction of steps the policy drove, per rollout written

    @property
    def policy_share(self) -> float:
        """Mean fraction of control steps the policy drove (0 when nothing was written)."""
        return float(np.mean(self.shares)) if self.shares else 0.0

    def add(self, other: Summary) -> None:
        self.written += other.written
        self.existing += other.existing
        self.successes += other.successes
        self.shares += other.shares


def rollout_path(demos: Path, family: str, task: Task, round_: int, k: int) -> Path:
    """Beside the task's demos (generate_demos' layout), so training finds them with the task."""
    return demos / family / task.split / task_dirname(task) / f"{DEMO_PREFIX}dagger{round_}_{k}"


def rollout_seeds(seed: int, task_index: int, round_: int, k: int) -> tuple[int, int]:
    """(trial seed, takeover seed) of one rollout: new scenes every round, never generate's or evaluate's."""
    trial, coin = np.random.SeedSequence([seed, task_index, _DAGGER, round_, k]).generate_state(2)
    return int(trial), int(coin)


def labelled_rollout(runner: PolicyRunner, task_index: int, k: int, s: Settings) -> Episode:
    """One rollout of the adapted policy on a new scene of task ``task_index``, labelled by the expert."""
    family = runner.family
    task = family.tasks(s.split)[task_index]
    trial_seed, coin_seed = rollout_seeds(s.seed, task_index, s.round, k)
    env = family.make_env(task, trial_seed, render=True)
    try:
        expert = family.make_expert(env, coin_seed, 0.0)  # noise-free labels, as drift's
        takeover = PolicyTakeover(env, runner.act, runner.policy_steps, s.beta, coin_seed, runner.reset)
        episode = run_episode(family, env, expert, perturb=takeover)
    finally:
        env.close()
    episode.metadata.update(
        {
            DRIVEN_BY: DRIVEN_BY_POLICY,
            "dagger_round": s.round,
            "dagger_beta": s.beta,
            "policy_share": takeover.policy_steps / max(len(episode), 1),
            "expert_noise": 0.0,
            "dagger_seed": s.seed,
        }
    )
    return episode


def collect_task(
    runner: PolicyRunner,
    checkpoint: str,
    demos: Path,
    s: Settings,
    t: int,
    on_rollout: Callable[[Summary], None] | None = None,
) -> Summary:
    """Write the missing rollouts of task ``t`` of the split, after adapting on one fresh expert demo;
    ``on_rollout`` sees the running summary after each (a progress bar in a single process)."""
    family = runner.family
    task = family.tasks(s.split)[t]
    paths = [rollout_path(demos, family.name, task, s.round, k) for k in range(s.rollouts)]
    todo = [k for k, p in enumerate(paths) if not p.exists()]
    done = Summary(existing=s.rollouts - len(todo))
    if not todo:
        return done
    eval_settings = EvalSettings(tasks=s.tasks, trials=s.rollouts, split=s.split, seed=s.seed)
    avoid = {rollout_seeds(s.seed, t, s.round, k)[0] for k in range(s.rollouts)}
    runner.adapt(runner.demo_of(make_demos(family, t, 1, eval_settings, avoid=avoid)))
    for k in todo:
        episode = labelled_rollout(runner, t, k, s)
        episode.metadata["checkpoint"] = checkpoint
        with suppress(FileExistsError):  # another run wrote it meanwhile
            write_episode(paths[k], episode, family.state_names, source=SOURCE)
            done.written += 1
            done.successes += int(episode.success)
            done.shares.append(float(episode.metadata["policy_share"]))
        if on_rollout is not None:
            on_rollout(done)
    return done


_worker: tuple[PolicyRunner, str, Path, Settings] | None = None


def _init_worker(checkpoint: str, demos: Path, s: Settings) -> None:
    global _worker
    torch.set_num_threads(1)  # one process per core: intra-op threads would oversubscribe
    _worker = (PolicyRunner(checkpoint), checkpoint, demos, s)


def _collect_in_worker(t: int) -> Summary:
    assert _worker is not None, "worker not initialised"
    return collect_task(*_worker, t)


def _task_summaries(
    runner: PolicyRunner, checkpoint: str, demos: Path, s: Settings, workers: int, bar: tqdm
) -> Iterator[Summary]:
    """One summary per task as tasks finish: in this process (the bar moves per rollout), or in a spawn
    pool of ``workers`` processes (each loads the checkpoint; a task's rollouts share one adaptation, so
    the task is the unit, and the bar moves per task)."""
    if workers <= 1 or s.tasks <= 1:
        for t in range(s.tasks):
            done = collect_task(runner, checkpoint, demos, s, t, on_rollout=lambda _: bar.update(1))
            bar.update(done.existing)
            yield done
        return
    ctx = mp.get_context("spawn")  # fork would copy MuJoCo / EGL and torch thread state
    with ctx.Pool(min(workers, s.tasks), initializer=_init_worker, initargs=(checkpoint, demos, s)) as pool:
        for done in pool.imap_unordered(_collect_in_worker, range(s.tasks), chunksize=1):
            bar.update(done.existing + done.written)
            yield done


def collect(runner: PolicyRunner, checkpoint: str, demos: Path, s: Settings, workers: int = 1) -> Summary:
    """Write the missing rollouts of the first ``s.tasks`` tasks; returns what was done."""
    family = runner.family
    split_tasks = family.tasks(s.split)
    if not 1 <= s.tasks <= len(split_tasks):
        raise EvaluationError(f"--tasks {s.tasks}: the {s.split} split has {len(split_tasks)} tasks")
    summary = Summary()
    bar = tqdm(total=s.tasks * s.rollouts, desc=f"dagger round {s.round}", unit="rollout", file=sys.stderr)
    try:
        for done in _task_summaries(runner, checkpoint, demos, s, workers, bar):
            summary.add(done)
            bar.set_postfix(success=f"{summary.successes}/{summary.written}")
    finally:  # even after Ctrl-C, the index lists exactly the bags on disk (as generate_demos')
        bar.close()
        write_index(demos / family.name / s.split, family.name, s.split)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint directory (model.safetensors + config.json)")
    p.add_argument("--demos", type=Path, required=True, help="the demo directory training reads (rollouts join it)")
    p.add_argument("--tasks", type=int, required=True, help="first N tasks of the split")
    p.add_argument("--rollouts", type=int, default=5, help="labelled rollouts per task (default 5)")
    p.add_argument("--round", type=int, required=True, help="DAgger round (names the bags, seeds new scenes)")
    p.add_argument("--beta", type=float, default=0.0, help="chance the expert drives an acting step (default 0)")
    p.add_argument("--split", default="train", help="task split (default train: the tasks training learns)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scenes and coins (default 0)")
    p.add_argument("--threads", type=int, help="torch CPU threads (workers use 1 each)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes, one task each at a time (default 1)")
    args = p.parse_args(argv)
    for name in ("tasks", "rollouts", "workers"):
        if getattr(args, name) <= 0:
            p.error(f"--{name} must be positive")
    if args.round < 0 or not 0.0 <= args.beta <= 1.0:
        p.error("--round must be >= 0 and --beta in [0, 1]")
    if not args.demos.is_dir():
        p.error(f"--demos {args.demos} is not a directory (generate_demos makes one)")
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = Settings(args.tasks, args.rollouts, args.round, args.beta, args.split, args.seed)
    try:
        runner = PolicyRunner(args.checkpoint)
        summary = collect(runner, str(args.checkpoint), args.demos, settings, args.workers)
    except (CheckpointError, ConfigError, EvaluationError, RunnerError, TaskError, ValueError) as exc:
        print(f"dagger: {exc}", file=sys.stderr)
        return 2
    print(
        f"dagger round {args.round}: wrote {summary.written} labelled rollouts ({summary.existing} already there), "
        f"{summary.successes} succeeded; the policy drove {summary.policy_share:.0%} of their steps"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
