"""Meta-training data: a directory of demo bags -> a memory-mapped ``.npy`` cache -> meta-batches.

Decoding an MCAP bag (zstd chunks, one image message per frame) costs far more than a meta-iteration,
so every usable demo is decoded once, turned into the fixed-horizon arrays of
:func:`mil_policy.demo_arrays.demo_arrays` (the same function evaluation and the policy node use), and
stored as ``.npy`` files that later runs memory-map: a dataset larger than RAM still trains, and
several processes (DDP ranks) share one page cache.

The cache is keyed by everything its content depends on (the bags' paths, sizes and mtimes, the
horizon, the family and its config, :data:`FORMAT_VERSION`): when any of it changes, the cache is
rebuilt on the next load, never silently reused. It is written to a temporary directory and renamed
into place, so an interrupted build leaves no half cache. Demos that cannot be used (unreadable bag,
NaN, wrong image size, too short, ...) are skipped with their reason, listed in ``skipped.json``;
one bad recording never stops a build.

Splitting happens at load time over *tasks* (never demos, or validation would measure memorisation of a
training task): by the bags' own ``train``/``val`` split when the directory has both, else by a seeded
fraction. Tasks of the ``test`` split are held out of both.

Rollouts the learned policy drove and the expert labelled (DAgger, ``mil_policy.dagger``) sit beside the
demos of their task; they are only ever the *evaluation* demo of a meta-batch row, never the one the
policy adapts on, since at test time the policy adapts on a real demonstration.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from mil_policy.colour_augment import apply_colour_transforms, random_colour_transforms
from mil_policy.config import DataConfig, NetworkConfig
from mil_policy.demo_arrays import demo_arrays
from mil_policy.maml import DemoBatch
from mil_sim.demo_bag import read_episode
from mil_sim.families import get_family

FORMAT_VERSION = 4  # bump when the cache layout or the demo -> arrays conversion changes (3: labels, 4: adaptable)
CACHE_DIRNAME = ".mil_cache"
META = "meta.json"
SKIPPED = "skipped.json"
ARRAY_NAMES = ("images", "states", "actions", "targets", "task_index", "adaptable")
BAG_PREFIX = "demo_"


class DatasetError(ValueError):
    """A dataset that cannot be built or sampled as asked; the message says why and what to change."""


@dataclass(frozen=True)
class SkippedDemo:
    path: str  # relative to the demo directory
    reason: str


@dataclass(frozen=True)
class TaskSplit:
    """Task indices (into ``MetaDataset.task_ids``) of each split and where the split came from."""

    train: list[int]
    val: list[int]
    source: str  # "bag metadata" or "seeded fraction"
    held_out: list[int] = field(default_factory=list)  # test-split tasks, used for neither


def limit_train_tasks(split: TaskSplit, n: int) -> TaskSplit:
    """``split`` with only its first ``n`` training tasks: nested subsets for dataset-size sweeps."""
    if n > len(split.train):
        raise DatasetError(f"data.train_tasks={n} but the demos have only {len(split.train)} training tasks")
    return replace(split, train=split.train[:n])


# --------------------------------------------------------------------------------------------- dataset


@dataclass
class MetaDataset:
    """All usable demos of a directory, as arrays (memory-mapped when loaded from the cache).

    images (D, T, H, W, 3) uint8; states (D, T, S) and actions (D, T, A) float32; targets (D, 2)
    float32; task_index (D,) int64 into ``task_ids``; adaptable (D,) bool, false for policy-driven
    rollouts (``Episode.is_demonstration``). Demos are ordered by (task id, bag path).
    """

    root: Path
    cache_dir: Path
    images: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    targets: np.ndarray
    task_index: np.ndarray
    adaptable: np.ndarray
    task_ids: list[str]
    task_splits: list[str]  # the split each task's bags were recorded for
    demo_paths: list[str]
    skipped: list[SkippedDemo]
    family: str
    family_config: dict[str, Any]
    horizon: int
    _demos: list[np.ndarray] = field(default_factory=list, repr=False)
    _adaptable: list[np.ndarray] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        index = np.asarray(self.task_index)
        self._demos = [np.flatnonzero(index == t) for t in range(len(self.task_ids))]
        adaptable = np.asarray(self.adaptable, dtype=bool)
        self._adaptable = [d[adaptable[d]] for d in self._demos]

    @property
    def num_demos(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_tasks(self) -> int:
        return len(self.task_ids)

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height), the convention of the families and the network config."""
        return int(self.images.shape[3]), int(self.images.shape[2])

    @property
    def state_dim(self) -> int:
        return int(self.states.shape[2])

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[2])

    def demos_of(self, task: int) -> np.ndarray:
        """Demo indices of task ``task``."""
        return self._demos[task]

    def adaptable_demos_of(self, task: int) -> np.ndarray:
        """Indices of task ``task``'s demos a policy may adapt on (real demonstrations)."""
        return self._adaptable[task]

    def split_tasks(self, val_fraction: float, seed: int) -> TaskSplit:
        """Train/val tasks: the bags' own split when both exist, else a seeded fraction of the tasks."""
        splits = set(self.task_splits)
        tasks = range(self.num_tasks)
        if {"train", "val"} <= splits:
            return TaskSplit(
                train=[t for t in tasks if self.task_splits[t] == "train"],
                val=[t for t in tasks if self.task_splits[t] == "val"],
                source="bag metadata",
                held_out=[t for t in tasks if self.task_splits[t] not in ("train", "val")],
            )
        pool = [t for t in tasks if self.task_splits[t] != "test"] if splits - {"test"} else list(tasks)
        held_out = sorted(set(tasks) - set(pool))
        n_val = round(val_fraction * len(pool))
        if val_fraction > 0 and len(pool) >= 2:
            n_val = max(1, n_val)
        n_val = min(n_val, len(pool) - 1) if pool else 0
        perm = np.random.default_rng(seed).permutation(pool).tolist()
        return TaskSplit(
            train=sorted(perm[n_val:]), val=sorted(perm[:n_val]), source="seeded fraction", held_out=held_out
        )

    def summary(self, max_reasons: int = 5) -> str:
        """One paragraph for the log: what was loaded and why demos were skipped."""
        w, h = self.image_size
        lines = [
            f"dataset {self.root}: {self.num_demos} demos of {self.num_tasks} tasks "
            f"({self.family}, T={self.horizon}, {w}x{h} images, state {self.state_dim}, "
            f"action {self.action_dim}); cache {self.cache_dir}"
        ]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} demos (full list: {self.cache_dir / SKIPPED}):")
            lines += [f"  {s.path}: {s.reason}" for s in self.skipped[:max_reasons]]
            if len(self.skipped) > max_reasons:
                lines.append(f"  ... and {len(self.skipped) - max_reasons} more")
        return "\n".join(lines)


def check_compatible(dataset: MetaDataset, network: NetworkConfig) -> None:
    """Refuse a dataset whose images/states/actions the network was not built for (clear message)."""
    problems = []
    if dataset.image_size != (network.image_width, network.image_height):
        problems.append(
            f"images are {dataset.image_size[0]}x{dataset.image_size[1]} (family {dataset.family!r}, "
            f"family_config {dataset.family_config}) but the network expects "
            f"{network.image_width}x{network.image_height} (network.image_width/image_height)"
        )
    if network.image_channels != 3:
        problems.append(f"demos are RGB but network.image_channels is {network.image_channels}")
    if dataset.state_dim != network.state_dim:
        problems.append(f"states have {dataset.state_dim} dims but network.state_dim is {network.state_dim}")
    if dataset.action_dim != network.action_dim:
        problems.append(f"actions have {dataset.action_dim} dims but network.action_dim is {network.action_dim}")
    if problems:
        raise DatasetError(f"dataset {dataset.root} does not fit the network config: " + "; ".join(problems))


STATE_STD_FLOOR = 1e-3  # as the paper's reference code: an entry that never moves is not blown up


def standardisation(states: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-entry mean and standard deviation of ``states`` (N, S), each deviation floored at
    STATE_STD_FLOOR: the ``network.state_mean`` / ``state_std`` a network standardises with."""
    states = np.asarray(states, dtype=np.float64)
    return states.mean(axis=0).tolist(), np.maximum(states.std(axis=0), STATE_STD_FLOOR).tolist()


def state_statistics(dataset: MetaDataset, tasks: Sequence[int]) -> tuple[list[float], list[float]]:
    """:func:`standardisation` of the robot state over every frame of ``tasks``' demos (the training
    split's: validation and test tasks must not leak into what the network is built with)."""
    demos = np.concatenate([dataset.demos_of(t) for t in tasks]) if len(tasks) else np.zeros(0, dtype=int)
    if demos.size == 0:
        raise DatasetError("no training demos to compute the state statistics from")
    return standardisation(np.asarray(dataset.states[np.sort(demos)]).reshape(-1, dataset.state_dim))


# ------------------------------------------------------------------------------------------ discovery


def find_bags(root: Path, family: str | None = None) -> list[Path]:
    """Every demo bag under ``root`` (bag directories, bare ``.mcap`` files, ``demo_*`` dirs), sorted.

    Hidden directories (the cache, the generator's half-written ``.demo_*.tmp`` bags) are skipped. When
    ``root/<family>`` exists only that subtree is searched, so one root can hold several families. A
    ``demo_*`` directory without ``metadata.yaml`` still counts, so that it is reported as broken
    rather than silently ignored.
    """
    if family and (root / family).is_dir():
        root = root / family
    bags: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if here != root and ("metadata.yaml" in filenames or here.name.startswith(BAG_PREFIX)):
            bags.append(here)
            dirnames[:] = []
            continue
        bags += [here / f for f in filenames if f.endswith(".mcap") and not f.startswith(".")]
    return sorted(bags)


def _stamp(path: Path) -> list[Any]:
    """(name, size, mtime_ns) of a bag's files: any rewrite, truncation or addition changes it."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    out = []
    for f in files:
        st = f.stat()
        out.append([f.name, st.st_size, st.st_mtime_ns])
    return out


def cache_key(root: Path, bags: Sequence[Path], data: DataConfig) -> str:
    doc = {
        "format_version": FORMAT_VERSION,
        "family": data.family,
        "family_config": data.family_config,
        "horizon": data.horizon,
        "bags": [[b.relative_to(root).as_posix(), _stamp(b)] for b in bags],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _config_name(data: DataConfig) -> str:
    """Cache subdirectory per data config, so caches of e.g. two horizons coexist in one root."""
    doc = json.dumps([data.family, data.family_config, data.horizon, FORMAT_VERSION], sort_keys=True, default=str)
    return f"{data.family}-T{data.horizon}-{hashlib.sha256(doc.encode()).hexdigest()[:10]}"


def default_cache_root(root: Path) -> Path:
    """``<demos>/.mil_cache`` when writable, else a per-directory folder under ``~/.cache/mil``."""
    candidate = root / CACHE_DIRNAME
    if os.access(root, os.W_OK) or os.access(candidate, os.W_OK):
        return candidate
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mil" / "datasets"
    return base / hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- build


def load_dataset(
    demos: str | os.PathLike[str],
    data: DataConfig,
    *,
    cache_root: str | os.PathLike[str] | None = None,
    progress: bool = True,
    rebuild: bool = False,
) -> MetaDataset:
    """The dataset of directory ``demos`` under ``data``: from the cache when it is current, else built."""
    root = Path(demos)
    if not root.is_dir():
        raise DatasetError(f"demo directory {root} does not exist")
    if (root / META).is_file():
        if rebuild:
            raise DatasetError(
                f"{root} is a dataset cache, not a demo directory: it cannot be rebuilt without the bags"
            )
        return open_cache_dir(root, data)
    bags = find_bags(root, data.family)
    if not bags:
        raise DatasetError(
            f"no demo bags under {root} (expected <family>/<split>/<task>/demo_<k> bag directories; "
            f"generate some with: generate_demos --family {data.family} --out {root})"
        )
    croot = Path(cache_root) if cache_root is not None else default_cache_root(root)
    final = croot / _config_name(data)
    key = cache_key(root, bags, data)
    if not rebuild:
        cached = _open_cache(final, root, key)
        if cached is not None:
            return cached
    _build(root, bags, data, key, final, progress)
    dataset = _open_cache(final, root, key)
    if dataset is None:  # another process replaced it with a cache of different bags meanwhile
        raise DatasetError(f"cache {final} changed while it was being built; run again")
    return dataset


def open_cache_dir(path: Path, data: DataConfig) -> MetaDataset:
    """A cache directory used on its own, without the bags it was built from.

    Why: the cache is a fraction of the bags' size (it holds the training resolution, not the camera's:
    350 MB against 2.2 GB for the 60x40 placing preset), so it is what one copies to a training machine
    such as a GPU box. With the bags absent it cannot be checked against them; it is checked against
    ``data`` instead (family, family config, horizon, format version), and an incomplete or mismatched
    cache is an error, never a silent reuse.
    """
    try:
        meta = _read_meta(path)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"dataset cache {path}: cannot read {META}: {exc}") from exc
    want = {
        "format_version": FORMAT_VERSION,
        "family": data.family,
        "family_config": json.loads(json.dumps(data.family_config, default=str)),
        "horizon": data.horizon,
    }
    wrong = [f"{k} {meta.get(k)!r}, config wants {v!r}" for k, v in want.items() if meta.get(k) != v]
    if wrong:
        raise DatasetError(f"dataset cache {path} was built for another data config: " + "; ".join(wrong))
    dataset = _dataset_from_meta(path, path, meta)
    if dataset is None:
        missing = [f"{n}.npy" for n in ARRAY_NAMES if not (path / f"{n}.npy").is_file()]
        raise DatasetError(f"dataset cache {path} is incomplete or corrupt (missing: {missing or 'none'})")
    return dataset


def _open_cache(path: Path, root: Path, key: str) -> MetaDataset | None:
    """The cached dataset if ``path`` holds a complete cache with this key, else None (stale or absent)."""
    try:
        meta = _read_meta(path)
    except (OSError, ValueError):
        return None
    if meta.get("key") != key or meta.get("format_version") != FORMAT_VERSION:
        return None
    return _dataset_from_meta(path, root, meta)


def _read_meta(path: Path) -> dict[str, Any]:
    """The cache's ``meta.json``; ValueError when it is not a JSON object (OSError when unreadable)."""
    meta = json.loads((path / META).read_text())
    if not isinstance(meta, dict):
        raise ValueError(f"expected a JSON object, got {type(meta).__name__}")
    return meta


def _dataset_from_meta(path: Path, root: Path, meta: dict[str, Any]) -> MetaDataset | None:
    """The dataset of cache ``path`` whose ``meta.json`` is ``meta``; None when its arrays are incomplete."""
    try:
        arrays = {n: np.load(path / f"{n}.npy", mmap_mode="r") for n in ARRAY_NAMES}
        skipped = [SkippedDemo(**s) for s in json.loads((path / SKIPPED).read_text())]
        fields = {k: meta[k] for k in ("task_ids", "task_splits", "demo_paths", "family", "family_config", "horizon")}
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if arrays["images"].shape[0] == 0:  # cached an empty result: report it as the build would
        raise DatasetError(_no_usable_demos(root, skipped))
    return MetaDataset(root=root, cache_dir=path, **arrays, skipped=skipped, **fields)


@dataclass
class _Good:
    slot: int  # row in the staging image array
    path: str
    task_id: str
    split: str
    states: np.ndarray
    actions: np.ndarray
    target: np.ndarray
    adaptable: bool


def _build(root: Path, bags: Sequence[Path], data: DataConfig, key: str, final: Path, progress: bool) -> None:
    """Decode every bag once into a temp dir, then rename it over ``final`` (atomic for readers)."""
    family = get_family(data.family, **data.family_config)
    w, h = family.image_size
    T = data.horizon
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; a shared cache should be readable like a dir
    try:
        staging = np.lib.format.open_memmap(
            tmp / "staging.npy", mode="w+", dtype=np.uint8, shape=(len(bags), T, h, w, 3)
        )
        good: list[_Good] = []
        skipped: list[SkippedDemo] = []
        bar = tqdm(bags, desc=f"caching {data.family} demos", unit="demo", disable=not progress, file=sys.stderr)
        for bag in bar:
            rel = bag.relative_to(root).as_posix()
            try:
                episode = read_episode(bag)
                if episode.task.family != data.family:
                    raise ValueError(f"demo of family {episode.task.family!r}, training {data.family!r}")
                arr = demo_arrays(episode, T, family)
                _check_dims(arr.states, arr.actions, len(family.state_names), family.action_dim)
                if not np.isfinite(arr.target).all():
                    raise ValueError("target position is NaN")
            except Exception as exc:  # any broken demo is reported, never fatal
                skipped.append(SkippedDemo(rel, f"{type(exc).__name__}: {exc}"))
                continue
            staging[len(good)] = arr.images
            good.append(
                _Good(
                    len(good),
                    rel,
                    episode.task.task_id,
                    episode.task.split,
                    arr.states,
                    arr.actions,
                    arr.target,
                    episode.is_demonstration,
                )
            )
        bar.close()
        good, task_ids, task_splits = _group_tasks(good, skipped)
        _write_arrays(tmp, staging, good, T, h, w, len(family.state_names), family.action_dim)
        del staging
        (tmp / "staging.npy").unlink()
        skipped.sort(key=lambda s: s.path)
        meta = {
            "key": key,
            "format_version": FORMAT_VERSION,
            "family": data.family,
            "family_config": data.family_config,
            "horizon": T,
            "image_size": [w, h],
            "task_ids": task_ids,
            "task_splits": task_splits,
            "demo_paths": [g.path for g in good],
        }
        (tmp / SKIPPED).write_text(json.dumps([vars(s) for s in skipped], indent=1) + "\n")
        (tmp / META).write_text(json.dumps(meta, indent=1, default=str) + "\n")
        _replace_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if skipped and progress:
        reasons = Counter(s.reason.split(":")[0] for s in skipped)
        print(f"skipped {len(skipped)} of {len(bags)} demos ({dict(reasons)}); see {final / SKIPPED}", file=sys.stderr)


def _check_dims(states: np.ndarray, actions: np.ndarray, state_dim: int, action_dim: int) -> None:
    if states.shape[1] != state_dim or actions.shape[1] != action_dim:
        raise ValueError(
            f"demo has state/action dims {states.shape[1]}/{actions.shape[1]}, the family has {state_dim}/{action_dim}"
        )


def _group_tasks(good: list[_Good], skipped: list[SkippedDemo]) -> tuple[list[_Good], list[str], list[str]]:
    """Keep tasks with >= 2 demos, one of them a demonstration (MIL pairs an adaptation demo with an
    evaluation demo of one task; only a demonstration can be adapted on)."""
    by_task: dict[str, list[_Good]] = {}
    for g in good:
        by_task.setdefault(g.task_id, []).append(g)
    kept: list[_Good] = []
    task_ids, task_splits = [], []
    for task_id in sorted(by_task):
        demos = sorted(by_task[task_id], key=lambda g: g.path)
        if len(demos) < 2:
            skipped += [
                SkippedDemo(g.path, f"only usable demo of task {task_id} (MIL needs >= 2 per task)") for g in demos
            ]
            continue
        if not any(g.adaptable for g in demos):
            skipped += [
                SkippedDemo(g.path, f"task {task_id} has only policy-driven rollouts, no demonstration to adapt on")
                for g in demos
            ]
            continue
        task_ids.append(task_id)
        task_splits.append(Counter(g.split for g in demos).most_common(1)[0][0])
        kept += demos
    return kept, task_ids, task_splits


def _write_arrays(
    tmp: Path, staging: np.ndarray, good: list[_Good], T: int, h: int, w: int, state_dim: int, action_dim: int
) -> None:
    """Compact the kept demos into the final arrays (images streamed: they may exceed RAM)."""
    images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(len(good), T, h, w, 3))
    for i, g in enumerate(good):
        images[i] = staging[g.slot]
    images.flush()
    del images
    task_of = {tid: i for i, tid in enumerate(dict.fromkeys(g.task_id for g in good))}
    np.save(tmp / "states.npy", np.stack([g.states for g in good]) if good else np.zeros((0, T, state_dim), np.float32))
    np.save(
        tmp / "actions.npy", np.stack([g.actions for g in good]) if good else np.zeros((0, T, action_dim), np.float32)
    )
    np.save(tmp / "targets.npy", np.stack([g.target for g in good]) if good else np.zeros((0, 2), np.float32))
    np.save(tmp / "task_index.npy", np.asarray([task_of[g.task_id] for g in good], dtype=np.int64))
    np.save(tmp / "adaptable.npy", np.asarray([g.adaptable for g in good], dtype=bool))


def _replace_dir(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``, replacing an older cache (readers see the old or the new one)."""
    if final.exists():
        old = final.with_name(f".{final.name}.old.{os.getpid()}")
        final.replace(old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        tmp.replace(final)
    except OSError:  # another process published a cache in between: keep theirs if it is complete
        if not (final / META).is_file():
            raise


def _no_usable_demos(root: Path, skipped: Sequence[SkippedDemo]) -> str:
    reasons = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:3])
    more = " ..." if len(skipped) > 3 else ""
    return f"no usable demos under {root}: all {len(skipped)} were skipped ({reasons}{more})"


# -------------------------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class MetaBatchIndices:
    """Which demos and frames a meta-batch holds: demos (M, shots + 1), the last column evaluates."""

    tasks: np.ndarray  # (M,) task indices
    demos: np.ndarray  # (M, shots + 1) demo indices, distinct within a row
    frames: np.ndarray | None  # (M, shots + 1, F) sorted frame indices starting with 0, or None: all
    colour: np.ndarray | None = None  # (M, 3, 3) per-task colour transform (colour_augment.py), or None


def other_task_demos(idx: MetaBatchIndices, shots: int) -> MetaBatchIndices:
    """The same meta-batch with task i adapting on the demos of task i - 1 (the first on the last's).

    Validation and ``diagnose`` compare against it: a loss no better with the own demo than with this one
    means the demonstration is ignored. Rolling the indices (not loaded tensors) keeps the pairing the
    same whichever share of the tasks a DDP rank loads.
    """
    demos, frames = idx.demos.copy(), None if idx.frames is None else idx.frames.copy()
    demos[:, :shots] = np.roll(idx.demos[:, :shots], 1, axis=0)
    if frames is not None:
        frames[:, :shots] = np.roll(idx.frames[:, :shots], 1, axis=0)
    return MetaBatchIndices(idx.tasks, demos, frames, idx.colour)


class MetaBatchSampler:
    """Draws meta-batches: M distinct tasks, each with ``shots`` adaptation demos + 1 evaluation demo.

    Indices are drawn for the whole meta-batch and the tensors loaded for any share of its tasks
    (``part``), so DDP ranks sharing one seed see the same meta-batch and each loads only its share.
    """

    def __init__(
        self,
        dataset: MetaDataset,
        tasks: Sequence[int],
        meta_batch: int,
        shots: int = 1,
        frames_per_demo: int | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        name: str = "train",
        colour_augmentation: bool = False,
    ) -> None:
        self.dataset = dataset
        self.colour_augmentation = colour_augmentation
        self.meta_batch = meta_batch
        self.shots = shots
        self.frames_per_demo = frames_per_demo
        self.device = torch.device(device)
        self.rng = np.random.default_rng(seed)
        # Its own stream: switching augmentation on or off leaves the tasks, demos and frames drawn alike.
        self.colour_rng = np.random.default_rng([seed, 1])
        need = shots + 1
        self.tasks = np.asarray(
            [t for t in tasks if len(dataset.demos_of(t)) >= need and len(dataset.adaptable_demos_of(t)) >= shots],
            dtype=np.int64,
        )
        if meta_batch > len(self.tasks):
            raise DatasetError(
                f"maml.meta_batch={meta_batch} needs {meta_batch} distinct {name} tasks with at least {need} "
                f"demos each (shots={shots} demonstrations + 1 evaluation demo), but the {name} split has only "
                f"{len(self.tasks)} such tasks (of {len(tasks)}); lower maml.meta_batch or add tasks/demos"
            )
        if frames_per_demo is not None and not 1 <= frames_per_demo <= dataset.horizon:
            raise DatasetError(f"frames_per_demo={frames_per_demo} must be in [1, horizon={dataset.horizon}]")

    def sample_indices(self) -> MetaBatchIndices:
        m, need = self.meta_batch, self.shots + 1
        tasks = self.rng.choice(self.tasks, size=m, replace=False)
        demos = np.stack([self._demos_for(int(t)) for t in tasks])
        frames = None
        T, f = self.dataset.horizon, self.frames_per_demo
        if f is not None and f < T:
            # Frame 0 always (the target head reads it) and, from 2 frames on, the last one too (the
            # contextual baseline conditions on the demo's final image, as at test time).
            ends = [0] if f == 1 else [0, T - 1]
            k = f - len(ends)
            rest = self.rng.random((m, need, T - len(ends))).argsort(axis=-1)[..., :k] + 1
            frames = np.sort(np.concatenate([np.broadcast_to(np.array(ends), (m, need, len(ends))), rest], -1), -1)
        colour = random_colour_transforms(self.colour_rng, m) if self.colour_augmentation else None
        return MetaBatchIndices(tasks, demos, frames, colour)

    def _demos_for(self, task: int) -> np.ndarray:
        """``shots`` distinct demonstrations to adapt on, then an evaluation demo of any kind (DAgger
        rollouts included). A task of demonstrations only draws exactly as before DAgger data existed."""
        demos, adaptable = self.dataset.demos_of(task), self.dataset.adaptable_demos_of(task)
        if len(adaptable) == len(demos):
            return self.rng.choice(demos, size=self.shots + 1, replace=False)
        adapt = self.rng.choice(adaptable, size=self.shots, replace=False)
        rest = np.setdiff1d(demos, adapt)
        return np.concatenate([adapt, self.rng.choice(rest, size=1)])

    def load(self, idx: MetaBatchIndices, part: slice | None = None) -> tuple[DemoBatch, DemoBatch]:
        """(adaptation demos (m, shots, ...), evaluation demos (m, 1, ...)) for tasks ``part``."""
        return self.load_adaptation(idx, part), self._columns(idx, part, slice(self.shots, None))

    def load_adaptation(self, idx: MetaBatchIndices, part: slice | None = None) -> DemoBatch:
        """Only the adaptation demos (m, shots, ...) of tasks ``part``."""
        return self._columns(idx, part, slice(None, self.shots))

    def _columns(self, idx: MetaBatchIndices, part: slice | None, columns: slice) -> DemoBatch:
        part = part or slice(None)
        demos = idx.demos[part][:, columns]
        batch = self._batch(demos, None if idx.frames is None else idx.frames[part][:, columns])
        if idx.colour is not None:  # the same transform for a task's adaptation and evaluation demos
            batch = replace(batch, images=apply_colour_transforms(batch.images, idx.colour[part]))
        return batch

    def sample(self, part: slice | None = None) -> tuple[DemoBatch, DemoBatch]:
        return self.load(self.sample_indices(), part)

    def _batch(self, demos: np.ndarray, frames: np.ndarray | None) -> DemoBatch:
        ds = self.dataset
        if frames is None:
            flat = demos.reshape(-1)
            imgs, states, actions = ds.images[flat], ds.states[flat], ds.actions[flat]
        else:
            rows = demos.reshape(-1)[:, None]
            cols = frames.reshape(len(rows), -1)
            imgs, states, actions = ds.images[rows, cols], ds.states[rows, cols], ds.actions[rows, cols]
        lead = demos.shape
        dev = self.device
        images = torch.from_numpy(np.ascontiguousarray(imgs)).to(dev, non_blocking=True)
        images = images.reshape(*lead, *images.shape[1:]).movedim(-1, -3).contiguous().float().div_(255.0)

        def tensor(a: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(dev, non_blocking=True)
            return t.reshape(*lead, *t.shape[1:])

        return DemoBatch(images, tensor(states), tensor(actions), tensor(ds.targets[demos.reshape(-1)]))
