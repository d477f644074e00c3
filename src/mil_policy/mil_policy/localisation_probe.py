"""Can a preset's convolutional trunk see the scene's objects at all? A supervised probe, no meta-learning.

Why: when a MIL run's target estimate stays at the error of a constant guess, two failures look alike in
every training log: the features do not localise the objects, or they do but adaptation does not pick
the object the demo meant. With two objects that mostly lie on opposite sides of the goal (pushing), a
head that finds both but cannot tell them apart is off by nearly as much as a constant. This probe
separates the two. It trains the preset's trunk (convolutions, layer norm, spatial soft-argmax; the
same ``PolicyNetwork.features``, freshly initialised) and a linear head, by plain supervised regression,
to say from each demo's first frame where every landmark of the scene lies: the fixed markers by name
(pushing's goal) and the objects in order of their y coordinate, so that the answer needs no demo. It
reports the held-out error of each landmark against the constant guess (the training mean), and how far
the demonstrated target lies from the objects' centroid: the best a head that sees every object but
ignores the demo can do in the mean-squared sense.

The landmarks come from re-creating each demo's simulated scene (``TaskFamily.make_env`` with the bag's
task and trial seed, no rendering): only simulated demos carry them.

``./mil run probe_localisation --config PRESET --demos DIR [--max-demos N] [--steps N] [--json OUT]``
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mil_policy.colour_augment import apply_colour_transforms, random_colour_transforms
from mil_policy.config import ConfigError, MilConfig, NetworkConfig
from mil_policy.dataset import DatasetError, find_bags
from mil_policy.demo_arrays import DemoError, demo_arrays
from mil_policy.diagnose import print_and_save
from mil_policy.network import PolicyNetwork
from mil_sim.core import TaskError, TaskFamily
from mil_sim.demo_bag import DemoBagError, read_episode
from mil_sim.families import get_family


@dataclass
class ProbeData:
    """First frames and their landmarks, in the probe's fixed order."""

    images: np.ndarray  # (N, H, W, 3) uint8 policy images (frame 0 of each demo)
    points: np.ndarray  # (N, K, 2) float32 landmark positions (m)
    names: list[str]  # K landmark names: markers by name, then object_0.. by increasing y
    task_ids: list[str]  # (N,) the demo's task
    target_floor: np.ndarray  # (N,) target-to-centroid distance of each scene (m)


@dataclass
class ProbeRecord:
    """Held-out errors after ``step`` optimiser steps (mean distances in m)."""

    step: int
    error: dict[str, float]  # per landmark
    constant_error: dict[str, float]  # the training mean as the guess, per landmark


@dataclass
class ProbeResult:
    demos: int
    train_demos: int
    test_demos: int
    landmarks: list[str]
    target_floor: float  # mean over the held-out scenes (m)
    records: list[ProbeRecord]


def _ordered(landmarks_markers: dict, landmarks_objects: dict) -> tuple[list[str], np.ndarray]:
    """Markers by name, then objects by increasing y: an order the image alone determines."""
    names = sorted(landmarks_markers)
    points = [np.asarray(landmarks_markers[n], dtype=np.float32) for n in names]
    objects = sorted((np.asarray(p, dtype=np.float32) for p in landmarks_objects.values()), key=lambda p: float(p[1]))
    names += [f"object_{i}" for i in range(len(objects))]
    return names, np.stack(points + objects)


def collect(root: Path, family: TaskFamily, horizon: int, max_demos: int | None, progress: bool = True) -> ProbeData:
    """Frame 0 and the re-created scene's landmarks of up to ``max_demos`` bags, spread evenly over them."""
    bags = find_bags(root, family.name)
    if not bags:
        raise DatasetError(f"no demo bags under {root} (for family {family.name!r})")
    if max_demos is not None and len(bags) > max_demos:
        bags = [bags[i] for i in np.linspace(0, len(bags) - 1, max_demos).round().astype(int)]
    images, points, task_ids, floors = [], [], [], []
    names: list[str] | None = None
    for bag in tqdm(bags, desc="probe: read demos", unit="demo", disable=not progress):
        try:
            episode = read_episode(bag)
            frame0 = demo_arrays(episode, horizon, family).images[0]
            env = family.make_env(episode.task, int(episode.trial_seed), render=False)  # checks the task
        except (DemoBagError, DemoError, TaskError, TypeError, ValueError) as exc:
            raise DatasetError(f"{bag}: cannot re-create this demo's scene: {exc}") from exc
        try:
            env.reset()
            lm = env.landmarks()
        finally:
            env.close()
        if lm is None:
            raise DatasetError(f"family {family.name!r} does not report its landmarks; the probe cannot run on it")
        these, pts = _ordered(dict(lm.markers), dict(lm.objects))
        if names is not None and these != names:
            raise DatasetError(f"{bag}: landmarks {these} differ from the other demos' {names}")
        names = these
        images.append(frame0)
        points.append(pts)
        task_ids.append(episode.task.task_id)
        floors.append(lm.target_centroid_distance())
    assert names is not None
    return ProbeData(np.stack(images), np.stack(points), names, task_ids, np.asarray(floors, dtype=np.float64))


def split_by_task(task_ids: Sequence[str], test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Demo indices of training and held-out tasks (no task in both, so scenes of a task do not leak)."""
    tasks = sorted(set(task_ids))
    if len(tasks) < 2:
        raise DatasetError(f"the probe needs demos of at least 2 tasks to hold some out, got {len(tasks)}")
    order = np.random.default_rng(seed).permutation(len(tasks))
    n_test = min(len(tasks) - 1, max(1, round(test_fraction * len(tasks))))
    test_tasks = {tasks[i] for i in order[:n_test]}
    is_test = np.array([t in test_tasks for t in task_ids])
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def mean_distances(pred: np.ndarray, points: np.ndarray, names: list[str]) -> dict[str, float]:
    """Mean Euclidean distance per landmark: pred and points (N, K, 2)."""
    d = np.linalg.norm(pred - points, axis=-1).mean(axis=0)
    return {n: float(v) for n, v in zip(names, d, strict=True)}


def train_probe(
    network: NetworkConfig,
    data: ProbeData,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    steps: int,
    batch: int = 32,
    lr: float = 1e-3,
    augment: bool = False,
    eval_every: int = 250,
    seed: int = 0,
    progress: bool = True,
) -> list[ProbeRecord]:
    """Adam on the mean squared landmark error; held-out errors at step 0, every ``eval_every`` and the end."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    trunk = PolicyNetwork(network)
    k = data.points.shape[1]
    head = torch.nn.Linear(trunk.feature_dim, 2 * k)
    images = torch.from_numpy(data.images).permute(0, 3, 1, 2).float() / 255.0
    points = torch.from_numpy(data.points.reshape(len(data.points), -1))
    mean = points[train_idx].mean(dim=0)
    constant = mean_distances(
        np.broadcast_to(mean.numpy().reshape(k, 2), data.points[test_idx].shape), data.points[test_idx], data.names
    )
    # Parameters ``features`` does not use (FC layers, heads) get no gradient, which Adam skips.
    opt = torch.optim.Adam([*trunk.parameters(), *head.parameters()], lr=lr)

    def predict(x: torch.Tensor) -> torch.Tensor:
        return head(trunk.features(x)) + mean

    def evaluate(step: int) -> ProbeRecord:
        with torch.no_grad():
            pred = torch.cat([predict(images[torch.from_numpy(c)]) for c in _chunks(test_idx, 256)])
        err = mean_distances(pred.numpy().reshape(-1, k, 2), data.points[test_idx], data.names)
        return ProbeRecord(step=step, error=err, constant_error=constant)

    records = [evaluate(0)]
    bar = tqdm(range(1, steps + 1), desc="probe: train", unit="step", disable=not progress)
    for step in bar:
        idx = torch.from_numpy(rng.choice(train_idx, size=min(batch, len(train_idx)), replace=False))
        x = images[idx]
        if augment:
            x = apply_colour_transforms(x, random_colour_transforms(rng, len(idx)))
        loss = (predict(x) - points[idx]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == steps:
            records.append(evaluate(step))
            bar.set_postfix(error_cm=f"{100 * np.mean(list(records[-1].error.values())):.1f}")
    return records


def _chunks(idx: np.ndarray, size: int) -> list[np.ndarray]:
    return [idx[i : i + size] for i in range(0, len(idx), size)]


def format_report(result: ProbeResult) -> str:
    lines = [
        f"localisation probe: {result.demos} demos ({result.train_demos} train, {result.test_demos} held out, "
        "split by task); held-out mean error per landmark in cm (constant guess in brackets)",
    ]
    header = "step".rjust(6) + "".join(n.rjust(16) for n in result.landmarks)
    lines.append(header)
    for r in result.records:
        cells = "".join(
            f"{100 * r.error[n]:7.1f} [{100 * r.constant_error[n]:5.1f}]".rjust(16) for n in result.landmarks
        )
        lines.append(f"{r.step:6d}{cells}")
    lines.append(
        f"target to the objects' centroid (held-out scenes): {100 * result.target_floor:.1f} cm = the best "
        "mean-squared target guess that sees every object but not which one the demo means"
    )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="probe_localisation",
        description="Train a preset's conv trunk, supervised, to find the scene's landmarks in a demo's first "
        "frame: can these features see the objects at all, apart from telling them apart from a demo?",
    )
    p.add_argument("--config", type=Path, required=True, help="training preset (YAML/JSON MilConfig)")
    p.add_argument("--demos", type=Path, required=True, help="directory of simulated demo bags")
    p.add_argument("--max-demos", type=int, default=600, help="demos read, spread evenly (default 600)")
    p.add_argument("--steps", type=int, default=1500, help="optimiser steps (default 1500)")
    p.add_argument("--batch", type=int, default=32, help="images per step (default 32)")
    p.add_argument("--eval-every", type=int, default=250, help="held-out evaluation interval (default 250)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="fraction of tasks held out (default 0.2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if (
            args.steps < 1
            or args.batch < 1
            or args.eval_every < 1
            or (args.max_demos is not None and args.max_demos < 4)
        ):
            raise DatasetError("--steps, --batch and --eval-every must be >= 1 and --max-demos >= 4")
        if not 0.0 < args.test_fraction < 1.0:
            raise DatasetError(f"--test-fraction must be in (0, 1), got {args.test_fraction}")
        config = MilConfig.load(args.config)
        family = get_family(config.data.family, **config.data.family_config)
        data = collect(args.demos, family, config.data.horizon, args.max_demos)
        train_idx, test_idx = split_by_task(data.task_ids, args.test_fraction, args.seed)
        records = train_probe(
            config.network,
            data,
            train_idx,
            test_idx,
            args.steps,
            batch=args.batch,
            lr=config.maml.meta_lr,
            augment=config.data.colour_augmentation,
            eval_every=args.eval_every,
            seed=args.seed,
        )
    except (ConfigError, DatasetError, TaskError) as exc:
        print(f"probe_localisation: error: {exc}", file=sys.stderr)
        return 2
    result = ProbeResult(
        demos=len(data.images),
        train_demos=len(train_idx),
        test_demos=len(test_idx),
        landmarks=data.names,
        target_floor=float(data.target_floor[test_idx].mean()),
        records=records,
    )
    print_and_save(format_report(result), result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
