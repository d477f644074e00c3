"""One demo being recorded: a bounded queue fed by subscription callbacks, and one writer thread.

Callbacks only count the message and enqueue its serialized bytes, so a slow disk never stalls the
executor (and with it the VR buttons and services); if the queue overflows the message is counted as
dropped by the recorder instead of blocking. The writer thread appends to an
:class:`~mil_demo_recorder.bag_writer.IncrementalBagWriter` and flushes it every ``flush_period_s``,
which bounds what a crash can lose. Nothing here imports ROS: the node, the bench and the recovery of
killed recordings drive the same class.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mil_demo_recorder.bag_writer import BagWriteError, IncrementalBagWriter
from mil_demo_recorder.stats import StreamStats, demo_summary
from mil_demo_recorder.streams import BY_KEY, IMAGE_KEYS, StreamSpec, cdr_stamp_ns
from mil_sim import demo_bag as db

_STOP = object()
STATUS_RECORDING = "recording"  # metadata while the demo runs (what a killed recorder leaves behind)
STATUS_COMPLETE = "complete"  # stopped by the operator: a finished demonstration
STATUS_INTERRUPTED = "interrupted"  # the recorder shut down (Ctrl-C) mid-demo: finalised, not finished
STATUS_RECOVERED = "recovered"  # a killed recording, rewritten with a summary by recovery.repair_bag


@dataclass(frozen=True)
class RecordingConfig:
    compress: bool = True  # zstd MCAP chunks (lossless; ros2 bag play reads them)
    flush_period_s: float = 0.5  # at most this much of a demo is lost when the recorder is killed
    queue_size: int = 2000  # messages buffered between callbacks and the writer thread
    max_gap_s: float = 0.5  # a required stream silent for longer is warned about (and unusable)
    fsync: bool = False  # fsync on every flush too (survives power loss, costs disk latency)


@dataclass(frozen=True)
class RecordedStream:
    """A stream of this recording: its spec, the input topic it comes from, its rate threshold."""

    spec: StreamSpec
    input_topic: str
    min_rate_hz: float = 0.0


class DemoRecording:
    """Records one demo into ``path``; ``put`` from any thread, then ``finish`` or ``abort`` once."""

    def __init__(
        self,
        path: Path,
        streams: Sequence[RecordedStream],
        task: Mapping[str, Any],
        config: RecordingConfig,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.path = Path(path)
        self.config = config
        self.clock_ns = clock_ns
        self.streams = {s.spec.layout_topic: s for s in streams}
        topics = {db.TASK_TOPIC: db.RAW_MSGTYPES[db.TASK_TOPIC]}
        topics.update({s.spec.layout_topic: s.spec.msgtype for s in streams})
        self.writer = IncrementalBagWriter(self.path, topics, compress=config.compress)
        self.stats = {
            s.spec.layout_topic: StreamStats(s.spec.layout_topic, s.input_topic, s.spec.required, s.min_rate_hz)
            for s in streams
        }
        self.start_ns = clock_ns()
        self.end_ns: int | None = None
        self.meta: dict[str, Any] = {
            **task,
            db.RAW_RECORDING_KEY: db.RAW_RECORDING,
            "start_ns": self.start_ns,
            "status": STATUS_RECORDING,
            "complete": False,
            "max_gap_s": config.max_gap_s,
            "input_topics": {s.spec.layout_topic: s.input_topic for s in streams},
        }
        self.error: BaseException | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=config.queue_size)
        self._thread = threading.Thread(target=self._run, name=f"mil_record_{self.path.name}", daemon=True)
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Create the bag (metadata marked incomplete), log the task message, start writing."""
        self.writer.open(self.meta)
        task_json = json.dumps(self.meta, sort_keys=True)
        ts = db.typestore()
        msg = ts.types[db.RAW_MSGTYPES[db.TASK_TOPIC]](data=task_json)
        self.writer.write(db.TASK_TOPIC, self.start_ns, ts.serialize_cdr(msg, db.RAW_MSGTYPES[db.TASK_TOPIC]))
        self.writer.flush()
        self._thread.start()

    def put(
        self, topic: str, log_ns: int, data: bytes | memoryview, seq: int | None = None, publisher: Any = None
    ) -> None:
        """Count one received message and queue it for writing (never blocks)."""
        stream = self.streams.get(topic)
        if stream is None or self._closed:
            return
        stats = self.stats[topic]
        stats.on_receive(log_ns, cdr_stamp_ns(data) if stream.spec.stamped else None, seq, publisher)
        try:
            self._queue.put_nowait((topic, log_ns, data))
        except queue.Full:
            stats.on_queue_full()

    def finish(
        self, status: str = STATUS_COMPLETE, extra: Mapping[str, Any] | None = None, end_ns: int | None = None
    ) -> dict[str, Any]:
        """Write what is queued, finalise the bag (summary, metadata) and return its final task JSON.

        ``end_ns``: when the demo ended (default: now); a stop that waited for late messages gives its own time.
        """
        self._stop_thread()
        self.end_ns = self.clock_ns() if end_ns is None else end_ns
        summary = self.summary()
        self.meta.update(extra or {})
        self.meta.update(status=status, complete=status == STATUS_COMPLETE, end_ns=self.end_ns, stats=summary)
        if self.error is not None:
            self.writer.abort()
            raise BagWriteError(f"writing {self.path} failed: {self.error}") from self.error
        self.writer.close(self.meta)
        return self.meta

    def abort(self) -> None:
        """Stop writing and close the file as it is (the caller discards or keeps the bag)."""
        self._stop_thread()
        self.end_ns = self.clock_ns()
        self.writer.abort()

    def summary(self) -> dict[str, Any]:
        """Statistics so far (final once finished)."""
        for topic, stats in self.stats.items():
            stats.written = self.writer.counts.get(topic, 0)
        end = self.end_ns if self.end_ns is not None else self.clock_ns()
        return demo_summary(
            self.stats,
            self.start_ns,
            end,
            image_topic=BY_KEY["image"].layout_topic,
            pose_topic=BY_KEY["pose"].layout_topic,
            max_gap_s=self.config.max_gap_s,
            other_image_topics=[BY_KEY[k].layout_topic for k in IMAGE_KEYS[1:]],
        )

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # -- writer thread ----------------------------------------------------------------------------
    def _stop_thread(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _run(self) -> None:
        period = self.config.flush_period_s
        writer = self.writer
        while True:
            wait = max(0.005, period - (time.monotonic() - writer.last_flush))
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if item is _STOP:
                break
            try:
                if item is not None and self.error is None:
                    writer.write(*item)
                if self.error is None and time.monotonic() - writer.last_flush >= period:
                    writer.flush(fsync=self.config.fsync)
            except Exception as exc:  # disk full, ...: keep draining the queue, report at finish
                self.error = exc
