"""The recorder's dataset directory: where each demo bag goes, and ``index.json`` listing them.

Layout: ``<dataset_dir>/<task id with / as _>/demo_<UTC start time>`` (bag directories, the layout
``find_bags`` and the dataset builder expect) and ``<dataset_dir>/index.json``. A demo is entered in
the index when it starts (status ``recording``) and updated when it stops, so after a crash the index
still names the bag that was being written and the next recorder start can recover it. Discarded demos
move to ``<dataset_dir>/.discarded/`` (hidden: no dataset scan sees them, but nothing is lost to a
mis-pressed button). The index is rewritten atomically (temp file + rename) on every change.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

INDEX_NAME = "index.json"
INDEX_FORMAT = "mil_demo_recorder/index/1"
DISCARDED_DIR = ".discarded"
DEMO_PREFIX = "demo_"
_lock = threading.Lock()


class DatasetIndexError(ValueError):
    """index.json exists but is not a recorder index (the message says what to do)."""


def task_dirname(task_id: str) -> str:
    return task_id.replace("/", "_") or "unknown_task"


def new_demo_path(root: Path, task_id: str, start_ns: int) -> Path:
    """A fresh bag path for a demo of ``task_id`` started at ``start_ns`` (never an existing one)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(start_ns / 1e9)) + f"{(start_ns // 1_000_000) % 1000:03d}Z"
    base = root / task_dirname(task_id) / f"{DEMO_PREFIX}{stamp}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}_{k}")
    return path


def load_index(root: Path) -> dict[str, Any]:
    """The index of ``root`` (an empty one when there is none yet)."""
    path = root / INDEX_NAME
    if not path.is_file():
        return {"format": INDEX_FORMAT, "demos": []}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetIndexError(f"{path} is unreadable ({exc}); move it away to start a new index") from None
    if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT or not isinstance(doc.get("demos"), list):
        raise DatasetIndexError(
            f"{path} is not a mil_demo_recorder index (format {INDEX_FORMAT}); use another dataset_dir "
            "(e.g. not the sim generator's output directory)"
        )
    return doc


def _save(root: Path, doc: dict[str, Any]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    doc["num_demos"] = len(doc["demos"])
    doc["num_complete"] = sum(1 for d in doc["demos"] if d.get("complete"))
    tmp = root / f".{INDEX_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(root / INDEX_NAME)


def upsert(root: Path, entry: Mapping[str, Any]) -> None:
    """Add or replace the entry with the same ``path``."""
    with _lock:
        doc = load_index(root)
        demos = [d for d in doc["demos"] if d.get("path") != entry["path"]]
        demos.append(dict(entry))
        doc["demos"] = sorted(demos, key=lambda d: str(d.get("path")))
        _save(root, doc)


def remove(root: Path, rel_path: str) -> None:
    with _lock:
        doc = load_index(root)
        doc["demos"] = [d for d in doc["demos"] if d.get("path") != rel_path]
        _save(root, doc)


def entry(root: Path, bag: Path, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The index entry of a bag from its task JSON (as written at start or at stop)."""
    stats = meta.get("stats") or {}
    topics = stats.get("topics") or {}
    start_ns = int(meta.get("start_ns", 0))
    return {
        "path": bag.relative_to(root).as_posix(),
        "task_id": meta.get("task_id"),
        "family": meta.get("family"),
        "split": meta.get("split"),
        "objects": meta.get("objects"),
        "operator": meta.get("operator", ""),
        "notes": meta.get("notes", ""),
        "status": meta.get("status"),
        "complete": bool(meta.get("complete", False)),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start_ns / 1e9)),
        "duration_s": stats.get("duration_s"),
        "messages": {t: s.get("written") for t, s in topics.items()},
        "warnings": stats.get("warnings", []),
        "stats": stats,  # per topic: received/written/dropped/out of order/rate/max gap; image-pose sync
    }


def discard(root: Path, bag: Path) -> Path:
    """Move a bag out of the dataset (into ``.discarded/``) and out of the index; returns where it went."""
    rel = bag.relative_to(root).as_posix()
    target = root / DISCARDED_DIR / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    shutil.move(str(bag), str(target))
    remove(root, rel)
    parent = bag.parent
    if parent != root and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
    return target
