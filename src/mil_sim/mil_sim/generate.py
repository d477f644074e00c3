"""``generate_demos``: scripted-expert demonstrations of a task family, one demo bag per demonstration.

    generate_demos --family placing --split train --demos-per-task 2 --tasks 10 --out DIR --workers 2

writes ``DIR/<family>/<split>/<task id with / as _>/demo_<k>`` (the layout of :mod:`mil_sim.demo_bag`)
and an ``index.json`` beside the task directories listing every bag with its task, trial seed and the
settings it was made with (the meta-trainer finds bags on disk and keeps its own cache; the index is for
people, tools and resuming without opening every bag). Only successful expert rollouts are kept: a
failed one is retried with the next derived trial seed, a bounded number of times. Trial seeds depend
only on (--seed, task index, demo index, attempt), never on the worker count or the order demos finish
in, so a dataset is reproducible and an interrupted run resumes where it stopped (existing bags are
skipped; bags appear atomically). The index is rebuilt from the bags on disk after every run (even a
crashed one), so it also lists bags of earlier runs that asked for more tasks or demos. A run whose
--seed, --noise or --perturb differs from the bags already there is refused, so a directory never mixes
two kinds of demos. ``--perturb STD`` makes DART-style demos: noisy actions applied, the expert's own
actions kept as labels (:mod:`mil_sim.perturbation`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mil_sim.core import SPLITS, Task, TaskError, TaskFamily
from mil_sim.demo_bag import DemoBagError, read_task_metadata, write_episode
from mil_sim.families import FAMILY_NAMES, get_family
from mil_sim.perturbation import GaussianPerturbation
from mil_sim.rollout import run_episode

INDEX_NAME = "index.json"
DEMO_PREFIX = "demo_"
DEFAULT_MAX_RETRIES = 10
STALE_TMP_SECONDS = 600  # temp dirs of a killed run older than this are removed on the next run


@dataclass(frozen=True)
class Settings:
    """What every worker needs to rebuild the family and make any demo (picklable: no MuJoCo objects)."""

    family: str
    overrides: dict[str, Any]
    split: str
    out: Path  # DIR/<family>/<split>
    seed: int
    noise: float
    max_retries: int
    perturb: float = 0.0  # std of DART-style noise on the applied action (labels stay the expert's); 0 = none


@dataclass(frozen=True)
class Job:
    task_index: int
    demo_index: int


@dataclass(frozen=True)
class Outcome:
    """One demo's fate: written (or found already written) or given up after max_retries."""

    task_id: str
    demo_index: int
    path: Path
    attempts: int  # rollouts run (0 when the bag was already there)
    success: bool
    trial_seed: int | None = None
    n_steps: int = 0
    n_frames: int = 0


def derive_seeds(seed: int, task_index: int, demo_index: int, attempt: int) -> tuple[int, int]:
    """(trial seed, expert seed) of one attempt, independent across all four inputs."""
    trial, expert = np.random.SeedSequence([seed, task_index, demo_index, attempt]).generate_state(2)
    return int(trial), int(expert)


def task_dirname(task: Task) -> str:
    return task.task_id.replace("/", "_")


def bag_path(out: Path, task: Task, demo_index: int) -> Path:
    return out / task_dirname(task) / f"{DEMO_PREFIX}{demo_index}"


# --------------------------------------------------------------------------------------------- workers


class DemoMaker:
    """Runs the expert for one demo at a time; one per worker process, holding its own family."""

    def __init__(self, settings: Settings, family: TaskFamily | None = None) -> None:
        self.settings = settings
        self.family = family or get_family(settings.family, **settings.overrides)
        self.tasks = self.family.tasks(settings.split)

    def make(self, job: Job) -> Outcome:
        s = self.settings
        task = self.tasks[job.task_index]
        path = bag_path(s.out, task, job.demo_index)
        for attempt in range(s.max_retries + 1):
            trial_seed, expert_seed = derive_seeds(s.seed, job.task_index, job.demo_index, attempt)
            env = self.family.make_env(task, trial_seed, render=False)
            try:
                expert = self.family.make_expert(env, expert_seed, s.noise)
                perturb = GaussianPerturbation(self.family, s.perturb, expert_seed) if s.perturb > 0 else None
                episode = run_episode(self.family, env, expert, record_images=True, perturb=perturb)
            finally:
                env.close()
            if not episode.success:
                continue
            episode.metadata.update(
                expert_seed=expert_seed,
                expert_noise=s.noise,
                perturb_std=s.perturb,
                generator_seed=s.seed,
                attempt=attempt,
            )
            with suppress(FileExistsError):  # another run wrote it meanwhile: it is just as good
                write_episode(path, episode, self.family.state_names, source="sim_expert")
            return Outcome(
                task.task_id,
                job.demo_index,
                path,
                attempt + 1,
                True,
                trial_seed,
                len(episode),
                len(episode.images),
            )
        return Outcome(task.task_id, job.demo_index, path, s.max_retries + 1, False)


_maker: DemoMaker | None = None


def _init_worker(settings: Settings) -> None:
    global _maker
    _maker = DemoMaker(settings)


def _make_in_worker(job: Job) -> Outcome:
    assert _maker is not None, "worker not initialised"
    return _maker.make(job)


def run_jobs(settings: Settings, family: TaskFamily, jobs: Sequence[Job], workers: int) -> Iterator[Outcome]:
    """Outcomes as demos finish, in this process for one worker, else in a spawn pool."""
    if workers == 1 or len(jobs) <= 1:
        maker = DemoMaker(settings, family)
        yield from (maker.make(j) for j in jobs)
        return
    ctx = mp.get_context("spawn")  # fork would copy MuJoCo / EGL state that must not be shared
    with ctx.Pool(min(workers, len(jobs)), initializer=_init_worker, initargs=(settings,)) as pool:
        yield from pool.imap_unordered(_make_in_worker, jobs, chunksize=1)


SETTING_KEYS = ("generator_seed", "expert_noise", "perturb_std")  # how a bag was made, kept in its index entry


def settings_clash(settings: Settings, entries: Sequence[dict[str, Any]]) -> str | None:
    """Why bags already in the output were made differently (seed, noise, perturbation), if any were.

    Resuming skips existing bags, so without this check a run with, say, ``--perturb`` into a directory
    of plain demos would silently leave a dataset of two kinds. ``entries`` are the index entries of
    every bag on disk (:func:`scan_bags`), so a directory already mixed is caught too, and the whole
    directory is checked because the data loader reads it whole. A bag that does not record a setting
    (made before it was recorded) is not refused for it.
    """
    wanted = {"generator_seed": settings.seed, "expert_noise": settings.noise, "perturb_std": settings.perturb}
    clashes = []
    for entry in entries:
        differ = [f"{k} {entry[k]} (asked {v})" for k, v in wanted.items() if entry.get(k) not in (None, v)]
        if differ:
            clashes.append(f"{settings.out / entry['path']} was made with {', '.join(differ)}")
    if not clashes:
        return None
    more = f" (and {len(clashes) - 1} more bag(s) made differently)" if len(clashes) > 1 else ""
    return clashes[0] + more


# ----------------------------------------------------------------------------------------------- index


def scan_bags(out: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Index entries of every complete bag under ``out``, and the bags whose metadata is unreadable.

    A bag's metadata is parsed only when the index does not already hold an entry for it made from the
    same ``metadata.yaml`` (same inode, size and modification time): bags are written once and never
    edited, so this is exact, and a resumed run over thousands of bags starts in seconds instead of
    parsing every bag's YAML (about 24 ms each).
    """
    known = _indexed_entries(out)
    entries, bad = [], []
    for bag in sorted(out.glob(f"*/{DEMO_PREFIX}*"), key=_bag_sort_key):
        if not bag.is_dir() or bag.name.startswith("."):
            continue
        path, stamp = bag.relative_to(out).as_posix(), _metadata_stamp(bag)
        cached = known.get(path)
        if stamp is not None and cached is not None and cached.get("metadata_stamp") == stamp:
            entries.append(cached)
            continue
        try:
            meta = read_task_metadata(bag)
        except DemoBagError as exc:
            bad.append(f"{bag}: {exc}")
            continue
        made = meta.get("metadata") or {}
        entries.append(
            {
                "path": path,
                "task_id": meta["task_id"],
                "trial_seed": meta["trial_seed"],
                "success": meta.get("success"),
                "n_steps": meta.get("n_steps"),
                "n_frames": meta.get("n_images"),
                **{k: made.get(k, 0.0 if k == "perturb_std" else None) for k in SETTING_KEYS},
                "metadata_stamp": stamp,
            }
        )
    return entries, bad


def _metadata_stamp(bag: Path) -> list[int] | None:
    """(inode, size, mtime_ns) of the bag's metadata.yaml; None when it has none (always parsed then)."""
    try:
        st = (bag / "metadata.yaml").stat()
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _indexed_entries(out: Path) -> dict[str, dict[str, Any]]:
    """The existing index's entries by path; empty when there is none or it is unreadable (rebuilt then)."""
    try:
        doc = json.loads((out / INDEX_NAME).read_text(encoding="utf-8"))
        return {e["path"]: e for e in doc["demos"] if isinstance(e, dict) and "path" in e}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _bag_sort_key(p: Path) -> tuple[str, int, str]:
    suffix = p.name[len(DEMO_PREFIX) :]
    return (p.parent.name, int(suffix) if suffix.isdigit() else -1, p.name)


def write_index(out: Path, family: str, split: str) -> tuple[Path, list[dict[str, Any]], list[str]]:
    """(Re)write ``out/index.json`` from the bags on disk, atomically; returns (path, entries, problems)."""
    entries, bad = scan_bags(out)
    doc = {"family": family, "split": split, "num_demos": len(entries), "demos": entries}
    index = out / INDEX_NAME
    tmp = out / f".{INDEX_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    tmp.replace(index)
    return index, entries, bad


def remove_stale_tmp(out: Path, older_than_s: float = STALE_TMP_SECONDS) -> int:
    """Delete half-written bag temp dirs a killed run left behind (never the final bags)."""
    now, removed = time.time(), 0
    for tmp in out.glob(f"*/.{DEMO_PREFIX}*.tmp"):
        if tmp.is_dir() and now - tmp.stat().st_mtime > older_than_s:
            shutil.rmtree(tmp, ignore_errors=True)
            removed += 1
    return removed


# ------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="generate_demos",
        description="Generate scripted-expert demonstrations of a task family as rosbag2 (MCAP) demo bags.",
    )
    p.add_argument("--family", required=True, help=f"task family: {', '.join(FAMILY_NAMES)}")
    p.add_argument("--split", default="train", help=f"task split: {', '.join(SPLITS)} (default train)")
    p.add_argument("--demos-per-task", type=int, default=2, help="demonstrations per task (default 2)")
    p.add_argument("--tasks", type=int, default=10, help="first N tasks of the split (default 10)")
    p.add_argument("--out", type=Path, required=True, help="output root; bags go to OUT/<family>/<split>/")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed; trial seeds derive from it (default 0)")
    p.add_argument("--noise", type=float, default=1.0, help="expert noise scale, 0 = deterministic (default 1)")
    p.add_argument(
        "--perturb",
        type=float,
        default=0.0,
        metavar="STD",
        help="DART-style demos: add Gaussian noise of this std (action units) to every applied action and "
        "record the expert's own action as the label, so the data shows it recovering (default 0 = off)",
    )
    p.add_argument(
        "--max-retries",
        type=int,
        default=DEFAULT_MAX_RETRIES,
        help=f"new trial seeds to try after a failed expert rollout (default {DEFAULT_MAX_RETRIES})",
    )
    p.add_argument("--camera-width", type=int, help="override the family config's camera_width")
    p.add_argument("--camera-height", type=int, help="override the family config's camera_height")
    p.add_argument(
        "--family-config",
        type=json.loads,
        default=None,
        metavar="JSON",
        help="overrides of the family's config, e.g. '{\"image_size\": [40, 32]}' (train and evaluate "
        "with the same data.family_config)",
    )
    return p


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, TaskFamily, dict[str, Any]]:
    """Parse and validate; every user error exits with status 2 and a one-line message."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.split not in SPLITS:
        parser.error(f"unknown split {args.split!r}; expected one of {', '.join(SPLITS)}")
    for name in ("demos_per_task", "tasks", "workers", "camera_width", "camera_height"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.max_retries < 0 or not args.noise >= 0 or not args.perturb >= 0:
        parser.error("--max-retries, --noise and --perturb must not be negative")
    if args.family_config is not None and not isinstance(args.family_config, dict):
        parser.error("--family-config must be a JSON object")
    overrides = dict(args.family_config or {})
    overrides.update({k: getattr(args, k) for k in ("camera_width", "camera_height") if getattr(args, k) is not None})
    try:
        family = get_family(args.family, **overrides)
    except TaskError as exc:
        parser.error(str(exc))
    except TypeError:
        parser.error(f"family {args.family!r} has no config field(s) among {', '.join(overrides)} to override")
    return args, family, overrides


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the demos; exit 0 when all requested demos exist, 1 when some failed after retries."""
    args, family, overrides = parse_args(argv)
    started = time.monotonic()
    all_tasks = family.tasks(args.split)
    if args.tasks > len(all_tasks):
        print(f"warning: split {args.split!r} has only {len(all_tasks)} tasks; using all", file=sys.stderr)
    tasks = all_tasks[: args.tasks]
    out: Path = args.out / family.name / args.split
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(out)
    settings = Settings(family.name, overrides, args.split, out, args.seed, args.noise, args.max_retries, args.perturb)
    jobs = [Job(t, d) for t in range(len(tasks)) for d in range(args.demos_per_task)]
    pending = [j for j in jobs if not bag_path(out, tasks[j.task_index], j.demo_index).exists()]
    # Indexing first brings the index up to date with the bags on disk (the end's rescan then parses
    # only the new ones) and gives the settings check every bag's entry.
    _, existing, _ = write_index(out, family.name, args.split)
    clash = settings_clash(settings, existing)
    if clash:
        print(f"generate_demos: error: {clash}; give these demos another --out", file=sys.stderr)
        return 2
    try:
        outcomes = _run_with_progress(settings, family, jobs, pending, args.workers)
    finally:  # even after Ctrl-C or a crashing expert, the index lists exactly the bags on disk
        index, indexed, bad = write_index(out, family.name, args.split)
    _print_summary(args, len(jobs), outcomes, index, len(indexed), bad, time.monotonic() - started)
    return 0 if all(o.success for o in outcomes) else 1


def _run_with_progress(
    settings: Settings, family: TaskFamily, jobs: Sequence[Job], pending: Sequence[Job], workers: int
) -> list[Outcome]:
    outcomes = []
    with tqdm(total=len(jobs), initial=len(jobs) - len(pending), unit="demo", desc=settings.family) as bar:
        for outcome in run_jobs(settings, family, pending, workers):
            outcomes.append(outcome)
            bar.update(1)
            if not outcome.success:
                o = outcome
                bar.write(
                    f"gave up on {o.task_id} demo {o.demo_index}: expert failed {o.attempts} times",
                    file=sys.stderr,
                )
    return outcomes


def _print_summary(
    args: argparse.Namespace,
    n_jobs: int,
    outcomes: Iterable[Outcome],
    index: Path,
    n_indexed: int,
    bad: Sequence[str],
    elapsed: float,
) -> None:
    outcomes = list(outcomes)
    written = [o for o in outcomes if o.success]
    failed = [o for o in outcomes if not o.success]
    retries = sum(o.attempts - 1 for o in outcomes)
    print(
        f"{args.family}/{args.split}: {len(written)} demos written, "
        f"{n_jobs - len(outcomes)} already present, "
        f"{len(failed)} failed after {args.max_retries} retries; {retries} retried rollouts; "
        f"{elapsed:.1f} s"
    )
    print(f"index: {index} ({n_indexed} bags)")
    for o in failed:
        print(f"  failed: {o.task_id} demo {o.demo_index} ({o.attempts} rollouts, none successful) -> {o.path}")
    for line in bad:
        print(f"  unreadable bag skipped from index: {line}")


if __name__ == "__main__":
    raise SystemExit(main())
