"""``build_dataset``: a directory of demo bags (teleop and/or sim demos) -> the meta-training cache.

    build_dataset data/teleop --config config/train_placing_cpu.yaml [--report report.json]
    build_dataset data/teleop --family placing --horizon 30 --rebuild

All the work is :func:`mil_policy.dataset.load_dataset`'s (decode each bag once, subsample to T,
preprocess the images as the family does, derive the target, cache memory-mappable arrays, skip and
list unusable demos): ``train --demos DIR`` with the same config then finds the cache current and starts
at once. This command adds what an operator needs after a recording session: a progress bar while it
builds, the train/val split by task, and every skipped demo with the reason, grouped, on the terminal
and optionally as JSON. Exit status: 0 when a dataset was built (even with skipped demos; ``--strict``
makes any skipped demo an error, 3), 1 when no demo was usable, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mil_policy.config import ConfigError, DataConfig, MilConfig
from mil_policy.dataset import DatasetError, MetaDataset, load_dataset


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="build_dataset", description=__doc__.splitlines()[0])
    p.add_argument("demos", type=Path, help="directory of demo bags (recorder dataset_dir or generate_demos --out)")
    p.add_argument("--config", type=Path, help="training config (YAML/JSON MilConfig): its data section is used")
    p.add_argument("--family", help="task family (default: the config's, else placing)")
    p.add_argument("--horizon", type=int, help="steps T per demo after subsampling (default: the config's, 30)")
    p.add_argument("--cache", type=Path, help="cache directory (default DEMOS/.mil_cache, as train uses)")
    p.add_argument("--rebuild", action="store_true", help="rebuild even if the cache is current")
    p.add_argument("--report", type=Path, help="write the summary and every skipped demo as JSON here")
    p.add_argument("--strict", action="store_true", help="exit 3 when any demo was skipped")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def data_config(args: argparse.Namespace) -> DataConfig:
    data = MilConfig.load(args.config).data if args.config else DataConfig()
    if args.family:
        data.family = args.family
    if args.horizon is not None:
        data = DataConfig(
            family=data.family,
            family_config=data.family_config,
            horizon=args.horizon,
            frames_per_demo=None,
            val_fraction=data.val_fraction,
        )
    return data


def report(dataset: MetaDataset, data: DataConfig) -> dict[str, Any]:
    """What was built, how it splits, and why each skipped demo was skipped."""
    split = dataset.split_tasks(data.val_fraction, seed=0)
    by_reason: dict[str, list[str]] = defaultdict(list)
    for s in dataset.skipped:
        by_reason[_reason_kind(s.reason)].append(s.path)
    return {
        "demos_dir": str(dataset.root),
        "cache_dir": str(dataset.cache_dir),
        "family": dataset.family,
        "horizon": dataset.horizon,
        "image_size": list(dataset.image_size),
        "num_demos": dataset.num_demos,
        "num_tasks": dataset.num_tasks,
        "split": {
            "source": split.source,
            "train_tasks": len(split.train),
            "val_tasks": len(split.val),
            "held_out_tasks": len(split.held_out),
        },
        "demos_per_task": {t: len(dataset.demos_of(i)) for i, t in enumerate(dataset.task_ids)},
        "skipped": [{"path": s.path, "reason": s.reason} for s in dataset.skipped],
        "skipped_by_reason": dict(by_reason),
    }


def _reason_kind(reason: str) -> str:
    """A short class of a skip reason, for grouping ("incomplete recording", "missing required topic")."""
    text = reason.split(": ", 1)[-1]
    for key in (
        "incomplete recording",
        "missing required topic",
        "NaN",
        "not a readable",
        "silent for",
        "only usable demo",
        "fewer than the horizon",
        "no camera images",
        "does not exist",
        "cannot decode",
        "family",
    ):
        if key in reason:
            return key
    return text.split(" (")[0][:60]


def format_report(rep: dict[str, Any]) -> str:
    s = rep["split"]
    lines = [
        f"dataset {rep['demos_dir']}: {rep['num_demos']} demos of {rep['num_tasks']} tasks "
        f"({rep['family']}, T={rep['horizon']}, {rep['image_size'][0]}x{rep['image_size'][1]} images)",
        f"  split ({s['source']}): {s['train_tasks']} train / {s['val_tasks']} val tasks"
        + (f", {s['held_out_tasks']} held out (test split)" if s["held_out_tasks"] else ""),
        f"  cache {rep['cache_dir']}",
    ]
    if rep["skipped"]:
        lines.append(f"skipped {len(rep['skipped'])} demos:")
        for s_ in rep["skipped"]:
            lines.append(f"  {s_['path']}: {s_['reason']}")
    else:
        lines.append("no demo skipped")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        data = data_config(args)
    except (ConfigError, OSError, ValueError) as exc:
        print(f"build_dataset: error: {exc}", file=sys.stderr)
        return 2
    try:
        dataset = load_dataset(args.demos, data, cache_root=args.cache, progress=not args.quiet, rebuild=args.rebuild)
    except DatasetError as exc:
        print(f"build_dataset: {exc}", file=sys.stderr)
        if args.report:
            args.report.write_text(json.dumps({"demos_dir": str(args.demos), "error": str(exc)}, indent=1) + "\n")
        return 1
    rep = report(dataset, data)
    print(format_report(rep))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(rep, indent=1) + "\n")
    return 3 if args.strict and rep["skipped"] else 0


if __name__ == "__main__":
    sys.exit(main())
