"""``evaluate``: one-shot (and N-shot) closed-loop success of trained methods on held-out tasks in the sim.

    evaluate --checkpoint runs/mil/final [runs/lstm/final ...] [--method random] --shots 1 5 \\
             --tasks 18 --trials 4 --out eval/placing --videos 2 --workers 2

For each held-out task (the family's ``test`` split) the family's scripted expert records the
adaptation demo(s) at trial seeds different from the evaluation trials, so, as in the seed paper
(appendix A.1), the demo shows the same objects at other positions than the trial. The demo becomes
network input exactly as in training (:func:`mil_policy.demo_arrays.demo_arrays`), the method is
conditioned on it (MIL adapts with its configured inner steps) and the policy then drives the arm: it
acts at the T control steps :func:`~mil_policy.demo_arrays.subsample_indices` picks (the horizon the
network was trained on) and each action is held until the next policy step, then the episode ends
(placing: the gripper opens) and the family's success criterion scores it. Trial and demo seeds depend
only on (--seed, task index, trial/demo index), so every method meets the same scenes.

Without --tasks / --trials the paper's protocol is used: reaching 150 x 10, pushing 74 x 6, placing 18 x 4.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from mil_policy.checkpoint import CheckpointError, load_into, read_checkpoint
from mil_policy.config import DEMO_INPUTS, ConfigError, MilConfig
from mil_policy.demo_arrays import DemoError, demo_arrays, subsample_indices
from mil_policy.eval_report import (
    ConditionSummary,
    TrialResult,
    condition_key,
    format_table,
    plot_success,
    summarize,
    write_results,
)
from mil_policy.maml import DemoBatch
from mil_policy.methods import ConditionedPolicy, Method, build_method, images_to_tensor
from mil_policy.video import write_rollout_video
from mil_sim.core import Env, Episode, Task, TaskError, TaskFamily
from mil_sim.families import get_family
from mil_sim.rollout import run_episode

PAPER_PROTOCOL = {"reaching": (150, 10), "pushing": (74, 6), "placing": (18, 4)}  # (tasks, trials per task)
RANDOM = "random"
NO_IMAGE = np.zeros((0, 0, 3), np.uint8)  # what a policy that reads no images is given
_DEMO, _TRIAL = 0, 1  # seed-sequence roles: demo seeds and trial seeds come from separate streams
INFO_ORDER = {"video_only": 0, "no_actions": 1, "full": 2}  # how much of the demo a method is given


class EvaluationError(ValueError):
    """An evaluation that cannot run as asked (message says what to change)."""


@dataclass(frozen=True)
class Variant:
    """One thing to evaluate: a checkpoint (or the random policy) and the demo inputs it is given."""

    label: str
    method: str  # mil / contextual / lstm / random
    checkpoint: str | None  # None for the random policy
    demo_inputs: str  # full / no_actions / video_only; "none" for the random policy
    family: str
    family_config: dict[str, Any] = field(default_factory=dict)
    horizon: int = 0  # policy steps per episode (0: the family's own horizon)


@dataclass(frozen=True)
class EvalSettings:
    tasks: int
    trials: int
    shots: tuple[int, ...] = (1,)
    split: str = "test"
    seed: int = 0
    expert_noise: float = 1.0  # the demos' expert noise (generate_demos' default)
    max_demo_attempts: int = 10  # expert rollouts per demo before giving up (failed demos are redrawn)
    videos: int = 0  # videos of successes and of failures to keep per condition
    video_format: str = "gif"
    out: Path | None = None  # where videos go
    workers: int = 1
    device: str = "cpu"
    # A control: each demo shows the task with its target and first distractor exchanged (the trials and
    # their scoring are the task's own). A policy that reads the demo then goes for the trial's distractor;
    # one that finds the target some other way (a layout or appearance cue) does not.
    swap_demo_roles: bool = False


# ------------------------------------------------------------------------------------------ methods


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EvaluationError(f"--device {device}: torch sees no CUDA device")
    return device


def with_demo_inputs(config: MilConfig, demo_inputs: str | None, source: str = "checkpoint") -> MilConfig:
    """The config a method is evaluated with when its demos carry ``demo_inputs``.

    MIL adapts with its inner loss, so demos without actions need a two-head checkpoint meta-trained
    with the learned loss that ignores them (section 4.2); the config then says what to zero. The LSTM's
    encoder was built for its training demo inputs: it can be given more (ignored), never less. The
    contextual policy only looks at the final image.
    """
    if demo_inputs is None or demo_inputs == config.maml.demo_inputs:
        return config
    if demo_inputs not in DEMO_INPUTS:
        raise EvaluationError(f"demo inputs must be one of {', '.join(DEMO_INPUTS)}, got {demo_inputs!r}")
    if config.method == "mil":
        if demo_inputs != "full" and config.maml.inner_loss != "learned_no_actions":
            raise EvaluationError(
                f"{source}: demo inputs {demo_inputs!r} leave out the demo's actions, but this MIL "
                f"checkpoint adapts with inner_loss={config.maml.inner_loss!r}, which imitates them; only a "
                "two-head checkpoint meta-trained with inner_loss='learned_no_actions' (section 4.2) can "
                "adapt without actions"
            )
        maml = dataclasses.replace(config.maml, demo_inputs=demo_inputs)
        return dataclasses.replace(config, maml=maml)
    if config.method == "lstm" and INFO_ORDER[demo_inputs] < INFO_ORDER[config.maml.demo_inputs]:
        raise EvaluationError(
            f"{source}: this LSTM was trained on demo inputs {config.maml.demo_inputs!r} and its demo "
            f"encoder reads them; it cannot be given only {demo_inputs!r} (train one with "
            f"maml.demo_inputs={demo_inputs!r}, as the paper's Table 1 does)"
        )
    return config  # contextual, or an LSTM given more than it reads: the extra is ignored


def strip_demo(demo: DemoBatch, demo_inputs: str) -> DemoBatch:
    """Remove what the demo does not provide, whatever the method would do with it.

    no_actions: the actions are zeroed; video_only: the robot states too, and the target position
    (read off the arm's final pose) is dropped.
    """
    if demo_inputs == "full":
        return demo
    actions = torch.zeros_like(demo.actions)
    if demo_inputs == "no_actions":
        return DemoBatch(demo.images, demo.states, actions, demo.targets)
    return DemoBatch(demo.images, torch.zeros_like(demo.states), actions, None)


def family_of(variant: Variant) -> TaskFamily:
    try:
        return get_family(variant.family, **variant.family_config)
    except TypeError as exc:  # an unknown override of the family's config dataclass
        raise EvaluationError(f"bad config for family {variant.family!r}: {exc}") from exc


def check_compatible(config: MilConfig, family: TaskFamily, source: str) -> None:
    """The network must take the family's images, states and actions, and the horizon must fit."""
    net = config.network
    problems = []
    if tuple(family.image_size) != (net.image_width, net.image_height) or net.image_channels != 3:
        problems.append(
            f"the family gives {family.image_size[0]}x{family.image_size[1]} RGB policy images but the "
            f"network expects {net.image_width}x{net.image_height} with {net.image_channels} channels"
        )
    if len(family.state_names) != net.state_dim:
        problems.append(f"the family's state has {len(family.state_names)} entries, the network's {net.state_dim}")
    if family.action_dim != net.action_dim:
        problems.append(f"the family's actions have {family.action_dim} entries, the network's {net.action_dim}")
    if config.data.horizon > family.episode_steps:
        problems.append(f"horizon {config.data.horizon} exceeds the family's {family.episode_steps} control steps")
    if problems:
        raise EvaluationError(
            f"{source} does not fit family {family.name!r} as configured: "
            + "; ".join(problems)
            + " (was it trained on another family or family_config? see --family / --family-config)"
        )


def load_method(variant: Variant, device: str = "cpu") -> tuple[Method | None, MilConfig | None]:
    """The conditioned-ready method of a variant (None for the random policy), on ``device``."""
    if variant.checkpoint is None:
        return None, None
    state, config, _ = read_checkpoint(variant.checkpoint)
    config = with_demo_inputs(config, variant.demo_inputs, source=variant.checkpoint)
    method = build_method(config)
    load_into(method.module, state, source=f"checkpoint {variant.checkpoint}")
    method.module.to(device).eval()
    return method, config


def make_variants(
    checkpoints: Sequence[str | Path],
    random: bool = False,
    demo_inputs: Sequence[str] = (),
    family: str | None = None,
    family_config: dict[str, Any] | None = None,
) -> list[Variant]:
    """Variants for checkpoints x demo inputs (default: each checkpoint's own), plus the random policy.

    Everything that can be wrong with a checkpoint is found here, before any rollout: unreadable
    files, weights that do not match the config, demo inputs the method cannot take, a family whose
    images, states or actions do not fit the network.
    """
    variants: list[Variant] = []
    labels: set[str] = set()
    for ckpt in checkpoints:
        state, config, _ = read_checkpoint(ckpt)
        if config.method == RANDOM:
            random = True
            continue
        probe = build_method(config)
        load_into(probe.module, state, source=f"checkpoint {ckpt}")
        fam_name = family or config.data.family
        fam_cfg = dict(config.data.family_config) if fam_name == config.data.family else {}
        fam_cfg.update(family_config or {})
        resolved = Path(ckpt).resolve()  # run dir + checkpoint name: trainers name them checkpoint / best
        name = f"{config.method} ({resolved.parent.name}/{resolved.name})"
        label, k = name, 2
        while label in labels:
            label, k = f"{name} #{k}", k + 1
        labels.add(label)
        for inputs in demo_inputs or [config.maml.demo_inputs]:
            with_demo_inputs(config, inputs, source=str(ckpt))
            variant = Variant(label, config.method, str(ckpt), inputs, fam_name, fam_cfg, config.data.horizon)
            check_compatible(config, family_of(variant), f"checkpoint {ckpt}")
            variants.append(variant)
    if random:
        fam_name = family or (variants[0].family if variants else None)
        if fam_name is None:
            raise EvaluationError("the random policy needs --family when no checkpoint names one")
        fam_cfg = dict(variants[0].family_config) if variants and fam_name == variants[0].family else {}
        fam_cfg.update(family_config or {})
        variant = Variant(RANDOM, RANDOM, None, "none", fam_name, fam_cfg, 0)
        family_of(variant)  # unknown family / bad config now, not in a worker
        variants.append(variant)
    if not variants:
        raise EvaluationError("nothing to evaluate: give --checkpoint DIR and/or --method random")
    return variants


class RandomPolicy(ConditionedPolicy):
    """The random baseline: ``family.random_action`` (uniform within the family's action bounds; the
    paper draws a standard normal, which the sim would clip anyway), seeded per trial."""

    reads_images = False

    def __init__(self, family: TaskFamily, seed: Sequence[int]) -> None:
        self.family = family
        self.rng = np.random.default_rng(list(seed))

    def act(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        return self.family.random_action(self.rng)


# -------------------------------------------------------------------------------------------- seeds


def _seeds(seed: int, task_index: int, role: int, index: int, attempt: int = 0) -> tuple[int, int]:
    trial, expert = np.random.SeedSequence([seed, task_index, role, index, attempt]).generate_state(2)
    return int(trial), int(expert)


def trial_seeds(seed: int, task_index: int, trials: int) -> list[int]:
    return [_seeds(seed, task_index, _TRIAL, k)[0] for k in range(trials)]


# -------------------------------------------------------------------------------------------- demos


def role_swapped(family: TaskFamily, task: Task) -> Task:
    """The task with its target and first distractor exchanged (``EvalSettings.swap_demo_roles``)."""
    distractors = [r for r in task.objects if r.startswith("distractor")]
    if "target" not in task.objects or not distractors:
        raise EvaluationError(f"{task.task_id} has no target and distractor to swap: roles {sorted(task.objects)}")
    roles = dict(task.objects)
    roles["target"], roles[distractors[0]] = task.objects[distractors[0]], task.objects["target"]
    return family.make_task(task.split, **roles)


def make_demos(family: TaskFamily, task_index: int, n: int, settings: EvalSettings, avoid: set[int]) -> list[Episode]:
    """``n`` successful expert demos of a task at trial seeds not in ``avoid`` (the evaluation trials); of
    the task with target and distractor exchanged under ``settings.swap_demo_roles``."""
    task = family.tasks(settings.split)[task_index]
    if settings.swap_demo_roles:
        task = role_swapped(family, task)
    demos = []
    for k in range(n):
        for attempt in range(settings.max_demo_attempts):
            trial_seed, expert_seed = _seeds(settings.seed, task_index, _DEMO, k, attempt)
            if trial_seed in avoid:
                continue
            env = family.make_env(task, trial_seed, render=False)
            try:
                expert = family.make_expert(env, expert_seed, settings.expert_noise)
                episode = run_episode(family, env, expert)
            finally:
                env.close()
            if episode.success:
                demos.append(episode)
                break
        else:
            raise EvaluationError(
                f"the expert failed all {settings.max_demo_attempts} attempts at demo {k} of {task.task_id}"
            )
    return demos


def demo_batch(episodes: Sequence[Episode], family: TaskFamily, horizon: int) -> DemoBatch:
    """Episodes -> (N, T, ...) tensors, through the same demo_arrays as training."""
    arrays = [demo_arrays(ep, horizon, family) for ep in episodes]
    return DemoBatch(
        images=images_to_tensor(np.stack([a.images for a in arrays])),
        states=torch.from_numpy(np.stack([a.states for a in arrays])),
        actions=torch.from_numpy(np.stack([a.actions for a in arrays])),
        targets=torch.from_numpy(np.stack([a.target for a in arrays])),
    )


# ------------------------------------------------------------------------------------------ rollout


@dataclass
class RolloutOutcome:
    """What one closed-loop trial gave."""

    success: bool
    frames: list[np.ndarray]  # camera frames at the camera rate (empty unless recorded)
    error: str | None  # why the trial was cut short, if it was
    chosen: str | None  # the object it ended at (Env.chosen_role)
    target_distance: float | None  # how far from the target it ended, m (Env.target_distance)
    moved: str | None  # the object it moved furthest, or MOVED_NONE (Env.moved_role)


def rollout(
    family: TaskFamily, env: Env, policy: ConditionedPolicy, policy_steps: np.ndarray, record: bool = False
) -> RolloutOutcome:
    """Run one trial: the policy acts at ``policy_steps``, each action is held until the next one.

    A non-finite action ends the trial as a failure (the error says so) instead of crashing the whole
    evaluation.
    """
    obs = env.reset()
    policy.reset()
    acting = set(int(i) for i in policy_steps)
    frames: list[np.ndarray] = []
    action: np.ndarray | None = None
    error = None
    for i in range(family.episode_steps):
        frame = None
        if record and i % family.camera_every == 0:
            frame = env.render_camera()
            frames.append(frame)
        if i in acting or action is None:
            if policy.reads_images:  # the video's frame of this step when there is one: same state, same pixels
                image = family.preprocess(env.render_camera() if frame is None else frame)
            else:
                image = NO_IMAGE
            action = np.asarray(policy.act(image, obs.state), dtype=np.float32)
            if not family.is_valid_action(action):
                error = f"step {i}: policy returned action {action!r}"
                break
        obs = env.step(action)
    if error is None:
        env.end_episode()
    if record:
        frames.append(env.render_camera())
    success = error is None and env.success()
    return RolloutOutcome(success, frames, error, env.chosen_role(), env.target_distance(), env.moved_role())


# -------------------------------------------------------------------------------------- work units


@dataclass(frozen=True)
class Unit:
    """All trials of all variants on one task: the expert demos are recorded once and shared by every
    variant and condition (same family config), so methods are compared on the very same demos."""

    task_index: int
    variants: tuple[Variant, ...]


def _family_key(variant: Variant) -> str:
    return json.dumps([variant.family, variant.family_config], sort_keys=True)


class Evaluator:
    """Holds families and loaded methods (one per worker process) and evaluates units."""

    def __init__(self, settings: EvalSettings) -> None:
        self.settings = settings
        self._families: dict[str, TaskFamily] = {}
        self._methods: dict[tuple[str, str], tuple[Method | None, MilConfig | None]] = {}
        # Videos this worker has saved per (condition, outcome), keyed as _prune_videos counts them. Units
        # come in task order, so the trials _prune_videos keeps (the first per key) are among the recorded.
        self._videos: dict[tuple[tuple[str, int, str], bool], int] = {}

    def family(self, variant: Variant) -> TaskFamily:
        key = _family_key(variant)
        if key not in self._families:
            self._families[key] = family_of(variant)
        return self._families[key]

    def method(self, variant: Variant) -> tuple[Method | None, MilConfig | None]:
        key = (variant.label, variant.demo_inputs)  # unique per variant (Variant holds a dict: unhashable)
        if key not in self._methods:
            self._methods[key] = load_method(variant, self.settings.device)
        return self._methods[key]

    def run(self, unit: Unit, on_trial: Callable[[], None] | None = None) -> list[TrialResult]:
        s = self.settings
        seeds = trial_seeds(s.seed, unit.task_index, s.trials)
        demos: dict[str, list[Episode]] = {}
        results = []
        for v in unit.variants:
            family = self.family(v)
            if v.method != RANDOM and _family_key(v) not in demos:
                demos[_family_key(v)] = make_demos(family, unit.task_index, max(s.shots), s, avoid=set(seeds))
            results += self._run_variant(v, family, unit.task_index, seeds, demos.get(_family_key(v), []), on_trial)
        return results

    def _conditions(
        self, v: Variant, family: TaskFamily, task_index: int, demos: list[Episode]
    ) -> list[tuple[int, Callable[[int], ConditionedPolicy]]]:
        """(shots, trial index -> policy) per condition; MIL adapts once per condition, not per trial."""
        s = self.settings
        method, config = self.method(v)
        if method is None or config is None:
            return [(0, lambda k: RandomPolicy(family, (s.seed, task_index, k)))]
        full = demo_batch(demos, family, config.data.horizon)
        device = next(method.module.parameters()).device
        conditions = []
        for n in s.shots:
            batch = DemoBatch(full.images[:n], full.states[:n], full.actions[:n], full.targets[:n])
            policy = method.condition(strip_demo(batch, v.demo_inputs).to(device))
            conditions.append((n, lambda k, p=policy: p))
        return conditions

    def _run_variant(
        self,
        v: Variant,
        family: TaskFamily,
        task_index: int,
        seeds: list[int],
        demos: list[Episode],
        on_trial: Callable[[], None] | None,
    ) -> list[TrialResult]:
        s = self.settings
        task = family.tasks(s.split)[task_index]
        horizon = v.horizon or family.horizon  # the horizon the network was trained on
        policy_steps = subsample_indices(family.episode_steps, horizon)
        results = []
        for shots, make_policy in self._conditions(v, family, task_index, demos):
            for k, trial_seed in enumerate(seeds):
                outcome = self._trial(family, task, trial_seed, make_policy(k), policy_steps, record=False)
                demo_seeds = [d.trial_seed for d in demos[:shots]]
                result = TrialResult(
                    v.label,
                    v.method,
                    shots,
                    v.demo_inputs,
                    task.task_id,
                    task_index,
                    k,
                    trial_seed,
                    demo_seeds,
                    bool(outcome.success),
                    outcome.error,
                    chosen=outcome.chosen,
                    target_distance=outcome.target_distance,
                    moved=outcome.moved,
                )
                video_key = (condition_key(result), result.success)
                if s.videos > 0 and s.out is not None and self._videos.get(video_key, 0) < s.videos:
                    # Replayed with the camera on (rollouts are deterministic) rather than recording every
                    # trial: rendering frames for a video would otherwise double most trials' cost.
                    replay = self._trial(family, task, trial_seed, make_policy(k), policy_steps, record=True)
                    if replay.success == outcome.success and replay.chosen == outcome.chosen:
                        self._videos[video_key] = self._videos.get(video_key, 0) + 1
                        result.video = self._save_video(result, replay.frames, demos[0] if demos else None, family)
                    else:  # a video of another outcome would mislabel the trial; say why none was kept
                        warnings.warn(
                            f"{v.label} {shots}-shot, {task.task_id} trial {k}: the filmed replay ended "
                            f"{_outcome_words(replay)} but the trial ended {_outcome_words(outcome)}; no video kept "
                            "(rollouts should be deterministic: is something in the policy or sim random?)",
                            stacklevel=1,
                        )
                results.append(result)
                if on_trial:
                    on_trial()
        return results

    @staticmethod
    def _trial(
        family: TaskFamily,
        task: Task,
        trial_seed: int,
        policy: ConditionedPolicy,
        policy_steps: np.ndarray,
        record: bool,
    ) -> RolloutOutcome:
        env = family.make_env(task, trial_seed, render=False)
        try:
            return rollout(family, env, policy, policy_steps, record=record)
        finally:
            env.close()

    def _save_video(self, r: TrialResult, frames: list[np.ndarray], demo: Episode | None, family: TaskFamily) -> str:
        assert self.settings.out is not None
        outcome = "success" if r.success else "failure"
        stem = _slug(f"{r.label}_{r.shots}shot_{r.demo_inputs}_{r.task_id}_trial{r.trial}_{outcome}")
        name = f"{stem}.{self.settings.video_format}"
        rel = Path("videos") / name
        fps = family.control_rate_hz / family.camera_every
        write_rollout_video(self.settings.out / rel, frames, None if demo is None else list(demo.images), fps)
        return rel.as_posix()


def _outcome_words(outcome: RolloutOutcome) -> str:
    """How a rollout ended, for a message: success or failure, and at which object."""
    return f"{'in success' if outcome.success else 'in failure'} at {outcome.chosen or 'no object'}"


def _slug(text: str) -> str:
    """A file name: runs of anything but letters, digits, '-' and '.' become one '_'."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")


_worker: Evaluator | None = None


def _init_worker(settings: EvalSettings) -> None:
    global _worker
    torch.set_num_threads(1)  # one process per core: intra-op threads would oversubscribe
    _worker = Evaluator(settings)


def _run_in_worker(unit: Unit) -> list[TrialResult]:
    assert _worker is not None, "worker not initialised"
    return _worker.run(unit)


def _run_units(units: Sequence[Unit], settings: EvalSettings, bar: tqdm) -> Iterator[list[TrialResult]]:
    if settings.workers <= 1 or len(units) <= 1:
        evaluator = Evaluator(settings)
        for u in units:
            yield evaluator.run(u, on_trial=lambda: bar.update(1))
        return
    ctx = mp.get_context("spawn")  # fork would copy MuJoCo / EGL and torch thread state
    with ctx.Pool(min(settings.workers, len(units)), initializer=_init_worker, initargs=(settings,)) as pool:
        for results in pool.imap_unordered(_run_in_worker, units, chunksize=1):
            bar.update(len(results))
            yield results


def evaluate(variants: Sequence[Variant], settings: EvalSettings, progress: bool = True) -> list[TrialResult]:
    """Every variant x shots x task x trial; results sorted by condition, task and trial."""
    if settings.tasks <= 0 or settings.trials <= 0 or not settings.shots or min(settings.shots) <= 0:
        raise EvaluationError("tasks, trials and shots must be positive")
    for v in variants:
        available = len(family_of(v).tasks(settings.split))
        if settings.tasks > available:
            raise EvaluationError(
                f"{settings.tasks} tasks asked, family {v.family!r} has {available} {settings.split} tasks"
            )
    units = [Unit(i, tuple(variants)) for i in range(settings.tasks)]
    total = sum(settings.trials * (1 if v.method == RANDOM else len(settings.shots)) for v in variants)
    total *= settings.tasks
    order = {v.label + "\0" + v.demo_inputs: i for i, v in enumerate(variants)}
    results: list[TrialResult] = []
    with tqdm(total=total, desc="evaluate", unit="trial", disable=not progress, file=sys.stderr) as bar:
        for unit_results in _run_units(units, settings, bar):
            results.extend(unit_results)
    results.sort(key=lambda r: (order[r.label + "\0" + r.demo_inputs], r.shots, r.task_index, r.trial))
    if settings.videos > 0 and settings.out is not None:
        _prune_videos(results, settings.videos, settings.out)
    return results


def write_evaluation(
    out: Path,
    settings: EvalSettings,
    variants: Sequence[Variant],
    rows: Sequence[ConditionSummary],
    trials: Sequence[TrialResult],
    extra: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write an evaluation's summary and trials with its settings and variants, in the one results.json
    layout every reader of evaluations (compare_evals, plot_dataset_size) takes; ``extra`` adds keys."""
    meta = {
        "settings": {**dataclasses.asdict(settings), "out": str(out)},
        "variants": [dataclasses.asdict(v) for v in variants],
        **(extra or {}),
    }
    return write_results(out, rows, trials, meta)


def _prune_videos(results: list[TrialResult], keep: int, out: Path) -> None:
    """Workers each keep up to ``keep`` videos per outcome; keep the first ``keep`` per condition overall."""
    counts: dict[tuple[tuple[str, int, str], bool], int] = {}
    for r in results:
        if r.video is None:
            continue
        key = (condition_key(r), r.success)
        counts[key] = counts.get(key, 0) + 1
        if counts[key] > keep:
            (out / r.video).unlink(missing_ok=True)
            r.video = None


# ---------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="evaluate",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Writes results.json, results.csv, trials.csv, success.png (and videos/) under --out.",
    )
    p.add_argument(
        "--checkpoint",
        nargs="+",
        default=[],
        metavar="DIR",
        help="checkpoint directories (model.safetensors + config.json) to evaluate",
    )
    p.add_argument("--method", choices=[RANDOM], help="also evaluate the random policy (needs no checkpoint)")
    p.add_argument("--family", help="task family (default: the checkpoint's; required for --method random alone)")
    p.add_argument("--split", default="test", help="task split to evaluate on (default: test, held out)")
    p.add_argument("--tasks", type=int, help="first N tasks of the split (default: the paper's protocol)")
    p.add_argument("--trials", type=int, help="trials per task (default: the paper's protocol)")
    p.add_argument("--shots", type=int, nargs="+", default=[1], help="demos per task, e.g. --shots 1 5")
    p.add_argument(
        "--demo-inputs",
        nargs="+",
        choices=DEMO_INPUTS,
        default=[],
        help="what the demo provides (default: what each checkpoint was trained with); "
        "no_actions / video_only need a MIL checkpoint with inner_loss=learned_no_actions",
    )
    p.add_argument("--out", type=Path, default=Path("eval_results"), help="output directory")
    p.add_argument(
        "--videos",
        type=int,
        default=0,
        metavar="N",
        help="keep N rollout videos of successes and N of failures per condition (demo | rollout)",
    )
    p.add_argument("--video-format", choices=["gif", "mp4"], default="gif")
    p.add_argument(
        "--swap-demo-roles",
        action="store_true",
        help="control: each demo shows the task with target and first distractor exchanged; a policy that "
        "reads the demo then moves the trial's distractor (see 'moved target / other / none')",
    )
    add_rollout_options(p)
    return p


def add_rollout_options(p: argparse.ArgumentParser) -> None:
    """The options of every command that rolls checkpoints out through :func:`evaluate`."""
    p.add_argument(
        "--family-config",
        type=json.loads,
        default=None,
        metavar="JSON",
        help="overrides of the family's config, e.g. '{\"episode_steps\": 30}'",
    )
    p.add_argument("--workers", type=int, default=1, help="parallel processes (each loads the methods)")
    p.add_argument("--device", default="cpu", help="torch device for the policies: cpu, cuda, auto")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads in this process (default: torch's; workers use 1)",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the demo and trial layouts")
    p.add_argument("--expert-noise", type=float, default=1.0, help="noise of the demonstrating expert")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


USER_ERRORS: tuple[type[Exception], ...] = (EvaluationError, CheckpointError, ConfigError, TaskError, DemoError)


def run_cli(
    prog: str,
    args: argparse.Namespace,
    body: Callable[[argparse.Namespace], int],
    errors: tuple[type[Exception], ...] = USER_ERRORS,
) -> int:
    """``body(args)`` with ``--threads`` applied and restored; a user error prints one line, status 2."""
    threads = torch.get_num_threads()
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        return body(args)
    except errors as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)  # main() may be called in-process (tests, notebooks)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("evaluate", build_parser().parse_args(argv), _main)


def _main(args: argparse.Namespace) -> int:
    if args.workers < 1 or args.videos < 0:
        raise EvaluationError("--workers must be >= 1 and --videos >= 0")
    if args.family_config is not None and not isinstance(args.family_config, dict):
        raise EvaluationError("--family-config must be a JSON object")
    variants = make_variants(
        args.checkpoint,
        random=args.method == RANDOM,
        demo_inputs=args.demo_inputs,
        family=args.family,
        family_config=args.family_config,
    )
    families = {v.family for v in variants}
    if len(families) > 1:
        raise EvaluationError(f"checkpoints are for different families {sorted(families)}; pass --family")
    default_tasks, default_trials = PAPER_PROTOCOL.get(variants[0].family, (10, 4))
    settings = EvalSettings(
        tasks=args.tasks or default_tasks,
        trials=args.trials or default_trials,
        shots=tuple(args.shots),
        split=args.split,
        seed=args.seed,
        expert_noise=args.expert_noise,
        videos=args.videos,
        video_format=args.video_format,
        out=args.out,
        workers=args.workers,
        device=resolve_device(args.device),
        swap_demo_roles=args.swap_demo_roles,
    )
    trials = evaluate(variants, settings, progress=not args.no_progress)
    rows = summarize(trials)
    paths = write_evaluation(args.out, settings, variants, rows, trials)
    title = f"{variants[0].family}: {settings.tasks} {settings.split} tasks x {settings.trials} trials"
    plot = plot_success(rows, args.out / "success.png", title=title)
    print(format_table(rows))
    print(f"\nwrote {paths['json']}, {paths['csv']}, {paths['trials_csv']}, {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
