"""A rosbag2 MCAP bag that is safe to kill at any moment while it is being written.

rosbags' Writer keeps up to 1 MiB of messages in a pending chunk and writes ``metadata.yaml`` only on
close, so a killed recorder would lose the last second and leave a directory ``ros2 bag`` cannot
identify. This wrapper:

* writes a complete ``metadata.yaml`` right after opening, its task JSON marked ``complete: false``
  (status ``recording``), so a bag that never got finalised still says what it is and that it is
  unfinished;
* closes the pending chunk and flushes the file every ``flush_period_s`` (and on demand), so at most
  that much of the demo is lost on SIGKILL; what is on disk then is a sequence of whole chunks that
  :func:`mil_sim.demo_bag.read_raw_messages` reads without the summary/footer;
* on :meth:`close` lets rosbags write the summary and the final ``metadata.yaml`` (counts, the task
  JSON with ``complete: true`` and the demo's statistics) and fsyncs both.

It relies on rosbags' MCAP storage writer having ``close_chunk()`` and ``bio`` (rosbags is pinned in
requirements.txt; the recorder tests kill a recorder and read its bag back, so an upgrade that changes
this fails loudly).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from rosbags.interfaces import Connection
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.rosbag2.metadata import dump_qos_v9

from mil_demo_recorder.streams import bag_qos
from mil_sim import demo_bag as db


class BagWriteError(RuntimeError):
    """The bag cannot be created or written (disk full, path exists, rosbags changed, ...)."""


class IncrementalBagWriter:
    """Write messages of known topics into a new bag directory, flushed in small chunks."""

    def __init__(self, path: Path, topics: Mapping[str, str], *, compress: bool = True) -> None:
        """``topics`` maps layout topic -> message type; every topic gets a connection up front, so a
        stream that never delivers is visible in the bag (zero messages) rather than absent."""
        self.path = Path(path)
        self.topics = dict(topics)
        self.compress = compress
        self.counts: dict[str, int] = dict.fromkeys(self.topics, 0)
        self.bytes_written = 0
        self.last_flush = time.monotonic()
        self._writer: Writer | None = None
        self._conns: dict[str, Connection] = {}
        self._first_ns: int | None = None
        self._last_ns = 0

    # -- lifecycle --------------------------------------------------------------------------------
    def open(self, task: Mapping[str, Any]) -> None:
        """Create the bag and its provisional metadata.yaml (``task`` is the task JSON, incomplete)."""
        if self.path.exists():
            raise BagWriteError(f"demo bag {self.path} exists already, not overwriting")
        writer = Writer(self.path, version=db.BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
        if self.compress:
            writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        try:
            writer.open()
            storage = writer.storage
            if not (hasattr(storage, "close_chunk") and hasattr(storage, "bio")):
                raise BagWriteError("this rosbags version's MCAP writer cannot be flushed incrementally")
            ts = db.typestore()
            for topic, msgtype in self.topics.items():
                self._conns[topic] = writer.add_connection(
                    topic, msgtype, typestore=ts, offered_qos_profiles=[bag_qos(topic)]
                )
        except Exception:
            writer.abort()
            raise
        self._writer = writer
        self.set_task(task)
        self.write_metadata(task)
        self.flush(fsync=True)

    def set_task(self, task: Mapping[str, Any]) -> None:
        """The task JSON that goes into metadata.yaml custom_data on close."""
        assert self._writer is not None
        self._writer.set_custom_data(db.CUSTOM_DATA_KEY, json.dumps(task, sort_keys=True))

    def write(self, topic: str, log_ns: int, data: bytes | memoryview) -> None:
        """Append one serialized (CDR) message, logged at ``log_ns``."""
        assert self._writer is not None, "bag not open"
        self._writer.write(self._conns[topic], log_ns, data)
        self.counts[topic] += 1
        self.bytes_written += len(data)
        self._first_ns = log_ns if self._first_ns is None else min(self._first_ns, log_ns)
        self._last_ns = max(self._last_ns, log_ns)

    def flush(self, fsync: bool = False) -> None:
        """Put everything written so far on disk as whole chunks (readable after a SIGKILL)."""
        assert self._writer is not None
        storage: Any = self._writer.storage
        if storage.chunk.bio.tell():
            storage.close_chunk()
        storage.bio.flush()
        if fsync:
            os.fsync(storage.bio.fileno())
        self.last_flush = time.monotonic()

    def close(self, task: Mapping[str, Any]) -> None:
        """Finish the MCAP (summary, footer) and write the final metadata.yaml with ``task``."""
        assert self._writer is not None
        self.set_task(task)
        writer, self._writer = self._writer, None
        writer.close()
        for f in self.path.iterdir():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())

    def abort(self) -> None:
        """Close the file as it is (no summary), e.g. before the bag is discarded."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.abort()

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    # -- provisional metadata ---------------------------------------------------------------------
    def write_metadata(self, task: Mapping[str, Any]) -> None:
        """metadata.yaml as rosbags would write it on close, with the counts so far (atomic replace)."""
        start = self._first_ns or 0
        duration = max(0, self._last_ns - start)
        count = sum(self.counts.values())
        mcap = f"{self.path.name}.mcap"
        doc = {
            "rosbag2_bagfile_information": {
                "version": db.BAG_VERSION,
                "storage_identifier": "mcap",
                "relative_file_paths": [mcap],
                "duration": {"nanoseconds": duration},
                "starting_time": {"nanoseconds_since_epoch": start},
                "message_count": count,
                "topics_with_message_count": [
                    {
                        "topic_metadata": {
                            "name": topic,
                            "type": msgtype,
                            "serialization_format": "cdr",
                            "offered_qos_profiles": dump_qos_v9([bag_qos(topic)]),
                            "type_description_hash": self._conns[topic].digest,
                        },
                        "message_count": self.counts[topic],
                    }
                    for topic, msgtype in self.topics.items()
                ],
                "compression_format": "",
                "compression_mode": "",
                "files": [
                    {
                        "path": mcap,
                        "starting_time": {"nanoseconds_since_epoch": start},
                        "duration": {"nanoseconds": duration},
                        "message_count": count,
                    }
                ],
                "custom_data": {db.CUSTOM_DATA_KEY: json.dumps(task, sort_keys=True)},
                "ros_distro": "rosbags",
            }
        }
        tmp = self.path / ".metadata.yaml.tmp"
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        tmp.replace(self.path / "metadata.yaml")
