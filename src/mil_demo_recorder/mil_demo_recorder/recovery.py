"""Recover demos whose recorder was killed: find them, and rewrite each into a complete, indexed bag.

A killed recorder leaves a bag directory whose ``metadata.yaml`` still says ``status: recording``
(written at demo start) and whose MCAP file ends after the last flushed chunk, without summary or
footer. :func:`mil_sim.demo_bag.read_raw_messages` already reads such a bag as it is (a non-seeking
scan); this module goes one step further for tools that need a seekable file (``ros2 bag play``,
rosbags' Reader): it copies every message of the whole chunks, byte for byte, into a new bag that has a
summary and fresh metadata, keeps it flagged ``complete: false`` with status ``recovered`` (it is the
beginning of a demo, not a demonstration), and swaps it in place of the damaged one. The recorder does
this on start for every unfinished bag of its dataset directory (parameter ``repair_on_start``).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from mil_demo_recorder import dataset_index
from mil_demo_recorder.bag_writer import IncrementalBagWriter
from mil_demo_recorder.recording import STATUS_RECORDING, STATUS_RECOVERED
from mil_demo_recorder.stats import StreamStats, demo_summary
from mil_demo_recorder.streams import BY_KEY, BY_LAYOUT, cdr_stamp_ns
from mil_sim import demo_bag as db


def unfinished_bags(root: Path) -> list[Path]:
    """Raw bags under ``root`` whose metadata still says ``recording`` (their recorder never stopped)."""
    found = []
    for meta_file in sorted(root.glob("*/demo_*/metadata.yaml")):
        bag = meta_file.parent
        try:
            meta = db.read_task_metadata(bag)
        except db.DemoBagError:
            continue
        if meta.get(db.RAW_RECORDING_KEY) == db.RAW_RECORDING and meta.get("status") == STATUS_RECORDING:
            found.append(bag)
    return found


def repair_bag(bag: Path, root: Path | None = None) -> dict[str, Any]:
    """Rewrite a killed recording as a complete bag flagged incomplete; returns its new task JSON.

    With ``root`` (the dataset directory) its index entry is updated too.
    """
    bag = Path(bag)
    meta = db.read_task_metadata(bag)
    records, truncated = db.scan_mcap(db.raw_mcap_path(bag))
    topics = {db.TASK_TOPIC: db.RAW_MSGTYPES[db.TASK_TOPIC]}
    topics.update({topic: msgtype for topic, msgtype, _, _ in records if topic in db.RAW_MSGTYPES})
    inputs = meta.get("input_topics") or {}
    for topic in inputs:
        topics.setdefault(topic, db.RAW_MSGTYPES[topic])
    stats = {t: _stats_for(t, inputs.get(t, "")) for t in topics if t in BY_LAYOUT}
    staging = bag.parent / f".{bag.name}.repair"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        writer = IncrementalBagWriter(staging / bag.name, topics, compress=True)
        writer.open(meta)
        last = int(meta.get("start_ns", 0))
        for topic, _, log_ns, data in records:
            if topic not in topics:
                continue
            writer.write(topic, log_ns, data)
            last = max(last, log_ns)
            if topic in stats:
                spec = BY_LAYOUT[topic]
                stats[topic].on_receive(log_ns, cdr_stamp_ns(data) if spec.stamped else None)
        for topic, s in stats.items():
            s.written = writer.counts[topic]
        summary = demo_summary(
            stats,
            int(meta.get("start_ns", last)),
            last,
            image_topic=BY_KEY["image"].layout_topic,
            pose_topic=BY_KEY["pose"].layout_topic,
            max_gap_s=float(meta.get("max_gap_s", db.DEFAULT_MAX_GAP_S)),
            other_image_topics=[BY_KEY["compressed_image"].layout_topic],
        )
        meta.update(
            status=STATUS_RECOVERED,
            complete=False,
            end_ns=last,
            stats=summary,
            recovered={"at_unix_s": round(time.time(), 3), "truncated": truncated, "messages": len(records)},
        )
        writer.close(meta)
        old = bag.parent / f".{bag.name}.killed"
        shutil.rmtree(old, ignore_errors=True)
        bag.rename(old)
        (staging / bag.name).rename(bag)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if root is not None:
        dataset_index.upsert(root, dataset_index.entry(root, bag, meta))
    return meta


def _stats_for(topic: str, input_topic: str) -> StreamStats:
    spec = BY_LAYOUT[topic]
    return StreamStats(topic, input_topic or spec.default_input, spec.required, spec.default_min_rate_hz)
