"""Per-demo recording statistics: what arrived, what was written, what was lost, how well streams line up.

Counted at receipt (before the recorder's queue), so three kinds of loss are told apart:

* ``dropped_transport``: messages the publisher sent that never reached the recorder, from gaps in the
  DDS publication sequence numbers (per publisher; e.g. best-effort camera frames lost under load);
* ``dropped_queue``: messages the recorder received but could not queue for writing (disk too slow);
* ``received - written - dropped_queue``: nothing, unless the writer failed (reported as an error).

``out_of_order`` counts header stamps that go backwards within a stream. The image-pose sync offset
is, per camera frame, the distance to the nearest pose stamp: how far apart "what the camera saw" and
"where the arm was" can be when a reader pairs them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_NS = 1e9


@dataclass
class StreamStats:
    """Receipt-side counters of one stream during one demo (thread-safe ``on_receive``)."""

    topic: str  # layout topic in the bag
    input_topic: str
    required: bool
    min_rate_hz: float = 0.0
    received: int = 0
    written: int = 0
    dropped_queue: int = 0
    dropped_transport: int = 0
    out_of_order: int = 0
    log_ns: list[int] = field(default_factory=list)
    stamp_ns: list[int] = field(default_factory=list)  # header stamps (stamped streams only)
    _last_seq: dict[Any, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def on_receive(
        self, log_ns: int, stamp_ns: int | None = None, seq: int | None = None, publisher: Any = None
    ) -> None:
        with self._lock:
            self.received += 1
            self.log_ns.append(log_ns)
            if stamp_ns is not None:
                if self.stamp_ns and stamp_ns < self.stamp_ns[-1]:
                    self.out_of_order += 1
                self.stamp_ns.append(stamp_ns)
            if seq is not None and seq > 0:
                last = self._last_seq.get(publisher)
                if last is not None and seq > last + 1:
                    self.dropped_transport += seq - last - 1
                if last is None or seq > last:
                    self._last_seq[publisher] = seq

    def on_queue_full(self) -> None:
        with self._lock:
            self.dropped_queue += 1

    def times(self) -> np.ndarray:
        """Header stamps when they look real (set, and within a second of receipt), else receipt times."""
        log = np.asarray(self.log_ns, dtype=np.int64)
        if self.stamp_ns and len(self.stamp_ns) == len(log):
            stamps = np.asarray(self.stamp_ns, dtype=np.int64)
            if (stamps > 0).all() and np.median(np.abs(log - stamps)) < _NS:
                return np.sort(stamps)
        return np.sort(log)

    def summary(self) -> dict[str, Any]:
        t = self.times()
        span = (t[-1] - t[0]) / _NS if len(t) > 1 else 0.0
        gaps = np.diff(t) / _NS if len(t) > 1 else np.zeros(0)
        out: dict[str, Any] = {
            "input_topic": self.input_topic,
            "received": self.received,
            "written": self.written,
            "dropped_transport": self.dropped_transport,
            "dropped_queue": self.dropped_queue,
            "out_of_order": self.out_of_order,
            "rate_hz": round((len(t) - 1) / span, 3) if span > 0 else 0.0,
            "max_gap_s": round(float(gaps.max()), 4) if len(gaps) else None,
        }
        if self.stamp_ns and len(self.stamp_ns) == len(self.log_ns):
            latency = (np.asarray(self.log_ns) - np.asarray(self.stamp_ns)) / 1e6
            out["latency_ms_median"] = round(float(np.median(latency)), 3)
        return out


def sync_offsets_ms(image_times: np.ndarray, pose_times: np.ndarray) -> dict[str, float] | None:
    """Median and max distance (ms) from each camera frame to the nearest pose sample."""
    if len(image_times) == 0 or len(pose_times) == 0:
        return None
    pose = np.sort(pose_times)
    k = np.searchsorted(pose, image_times)
    before = pose[np.clip(k - 1, 0, len(pose) - 1)]
    after = pose[np.clip(k, 0, len(pose) - 1)]
    d = np.minimum(np.abs(image_times - before), np.abs(after - image_times)) / 1e6
    return {"median": round(float(np.median(d)), 3), "max": round(float(d.max()), 3)}


def demo_summary(
    streams: Mapping[str, StreamStats],
    start_ns: int,
    end_ns: int,
    *,
    image_topic: str,
    pose_topic: str,
    max_gap_s: float,
    other_image_topics: Sequence[str] = (),
) -> dict[str, Any]:
    """The statistics stored with a demo (metadata and index) and the warnings the operator sees."""
    topics = {t: s.summary() for t, s in streams.items()}
    image_topics = (image_topic, *other_image_topics)
    candidates = [streams[t] for t in image_topics if t in streams and streams[t].received]
    sync = None
    if candidates and pose_topic in streams:
        sync = sync_offsets_ms(candidates[0].times(), streams[pose_topic].times())
    return {
        "duration_s": round((end_ns - start_ns) / _NS, 3),
        "topics": topics,
        "image_pose_sync_ms": sync,
        "warnings": warnings(streams, topics, max_gap_s, (image_topic, *other_image_topics)),
    }


def warnings(
    streams: Mapping[str, StreamStats],
    topics: Mapping[str, dict[str, Any]],
    max_gap_s: float,
    image_topics: Sequence[str],
) -> list[str]:
    """Missing, slow, gappy or lossy streams, each as one sentence naming the input topic."""
    out = []
    have_images = any(streams[t].received for t in image_topics if t in streams)
    for topic, s in streams.items():
        info = topics[topic]
        name = f"{s.input_topic} ({topic})"
        if s.received == 0:
            if s.required and not (topic in image_topics and have_images):
                out.append(f"{name}: no messages: the demo cannot be used without this stream")
            continue
        if s.min_rate_hz > 0 and info["rate_hz"] < s.min_rate_hz:
            out.append(f"{name}: slow, {info['rate_hz']:.1f} Hz (expected at least {s.min_rate_hz:g} Hz)")
        if s.required and info["max_gap_s"] is not None and info["max_gap_s"] > max_gap_s:
            out.append(f"{name}: silent for {info['max_gap_s']:.2f} s (more than {max_gap_s:g} s)")
        lost = s.dropped_transport + s.dropped_queue
        if lost:
            out.append(
                f"{name}: {lost} messages dropped ({s.dropped_transport} in transport, "
                f"{s.dropped_queue} by the recorder queue)"
            )
        if s.out_of_order:
            out.append(f"{name}: {s.out_of_order} messages with a header stamp older than the previous one")
    return out


def format_table(summary: Mapping[str, Any]) -> str:
    """A fixed-width table of the per-topic numbers, for the log and the bench."""
    head = f"{'topic':<30} {'recv':>6} {'written':>7} {'drop':>5} {'ooo':>4} {'rate Hz':>8} {'max gap s':>9}"
    lines = [head, "-" * len(head)]
    for topic, t in summary["topics"].items():
        gap = "-" if t["max_gap_s"] is None else f"{t['max_gap_s']:.3f}"
        drop = t["dropped_transport"] + t["dropped_queue"]
        lines.append(
            f"{topic:<30} {t['received']:>6} {t['written']:>7} {drop:>5} "
            f"{t['out_of_order']:>4} {t['rate_hz']:>8.2f} {gap:>9}"
        )
    sync = summary.get("image_pose_sync_ms")
    lines.append(
        f"duration {summary['duration_s']:.2f} s; image-pose sync offset "
        + (f"median {sync['median']:.1f} ms, max {sync['max']:.1f} ms" if sync else "n/a")
    )
    return "\n".join(lines)
