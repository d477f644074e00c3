"""``replay``: publish a demo bag's topics over ROS with their original timing (pip-mode ``ros2 bag play``).

    replay data/teleop/placing_train_0/demo_20250101T120000123Z --rate 2 --loop
    replay BAG --robot-topics          # onto the PR2 names the policy node and the recorder subscribe to
    replay BAG --remap /camera/image_raw:=/my/camera --topics /camera/image_raw /ee_pose

Messages go out as the bag stores them (serialized bytes, no decode), at their log times scaled by
``--rate``, each topic with the QoS it was recorded with (camera best effort, ``/mil/task`` latched).
``--restamp`` rewrites header stamps to the time of publishing, for consumers that compare stamps with
their clock. Works on sim-generated and recorded bags, and on a killed recording (read without its
footer). Under a ROS install ``ros2 bag play BAG`` does the same for complete bags.
"""

from __future__ import annotations

import argparse
import struct
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mil_demo_recorder.streams import BY_KEY, bag_qos
from mil_sim import demo_bag as db

# Layout topic -> the PR2 topic the sim publishes it on (the recorder's default inputs, reversed).
ROBOT_TOPICS: Mapping[str, str] = {
    s.layout_topic: s.default_input for s in BY_KEY.values() if s.default_input and s.default_input != s.layout_topic
}
STAMPED_TYPES = {s.msgtype for s in BY_KEY.values() if s.stamped}


class ReplayError(ValueError):
    """A bag that cannot be replayed (unreadable, no such topic); the message says why."""


@dataclass
class BagMessages:
    """A bag's topics (name -> (type, QoS)) and an iterator factory over (topic, log ns, bytes)."""

    path: Path
    topics: dict[str, tuple[str, Any]]
    first_ns: int
    last_ns: int
    _records: list[tuple[str, int, bytes]] | None = field(default=None, repr=False)

    def messages(self) -> Iterator[tuple[str, int, bytes]]:
        if self._records is not None:
            yield from self._records
            return
        from rosbags.rosbag2 import Reader

        with Reader(self.path) as reader:
            for conn, stamp, data in reader.messages():
                yield conn.topic, stamp, bytes(data)


def open_bag(path: Path) -> BagMessages:
    """Index a bag for replay: seekable via rosbags when complete, else read whole without its footer."""
    from rosbags.rosbag2 import Reader

    if not path.exists():
        raise ReplayError(f"demo bag {path} does not exist")
    try:
        with Reader(path) as reader:
            topics = {c.topic: (c.msgtype, (c.ext.offered_qos_profiles or [None])[0]) for c in reader.connections}
            return BagMessages(path, topics, reader.start_time, reader.end_time)
    except Exception as exc:  # a killed recording: no summary/footer
        try:
            records, _ = db.scan_mcap(db.raw_mcap_path(path))
        except db.DemoBagError:
            raise ReplayError(f"{path}: not a readable bag ({type(exc).__name__}: {exc})") from None
    records.sort(key=lambda r: r[2])
    if not records:
        raise ReplayError(f"{path}: no messages")
    topics = {t: (mt, bag_qos(t)) for t, mt, _, _ in records}
    return BagMessages(path, topics, records[0][2], records[-1][2], [(t, ns, d) for t, _, ns, d in records])


def parse_remaps(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        src, sep, dst = item.partition(":=")
        if not sep or not src or not dst:
            raise ReplayError(f"--remap expects FROM:=TO, got {item!r}")
        out[src] = dst
    return out


def restamp(data: bytes, ns: int) -> bytes:
    """Overwrite the header stamp (the first field after the CDR encapsulation header)."""
    buf = bytearray(data)
    struct.pack_into("<iI" if buf[1] & 1 else ">iI", buf, 4, ns // 1_000_000_000, ns % 1_000_000_000)
    return bytes(buf)


class Replayer:
    """Publishes one bag from an rclpy node; ``run`` blocks until done (or ``stop``)."""

    def __init__(
        self,
        node: Any,
        bag: BagMessages,
        *,
        rate: float = 1.0,
        loop: bool = False,
        topics: Sequence[str] | None = None,
        remap: Mapping[str, str] | None = None,
        restamp_headers: bool = False,
    ) -> None:
        from mil_demo_recorder.ros_types import message_class, to_rclpy_qos

        if rate <= 0:
            raise ReplayError(f"--rate must be positive, got {rate}")
        unknown = set(topics or ()) - set(bag.topics)
        if unknown:
            raise ReplayError(f"{bag.path} has no topic {', '.join(sorted(unknown))} (it has {', '.join(bag.topics)})")
        self.node, self.bag, self.rate, self.loop = node, bag, rate, loop
        self.restamp = restamp_headers
        self.selected = list(topics) if topics else list(bag.topics)
        remap = dict(remap or {})
        self.out_topic = {t: remap.get(t, t) for t in self.selected}
        self.publishers = {
            t: node.create_publisher(message_class(bag.topics[t][0]), self.out_topic[t], to_rclpy_qos(bag.topics[t][1]))
            for t in self.selected
        }
        self.counts: dict[str, int] = dict.fromkeys(self.selected, 0)
        self._stop = threading.Event()

    def wait_for_subscribers(self, timeout: float, settle: float = 0.5) -> bool:
        """Wait until every publisher has a subscriber (or ``timeout``), then ``settle`` seconds more.

        Only the writer's side of discovery is visible from here; a volatile reader still drops samples
        from a writer it has not matched yet, so without the settle time the first messages of a replay
        can vanish on a loaded machine even though every publisher already counts its subscriber.
        """
        end = time.monotonic() + timeout
        while time.monotonic() < end and not self._stop.is_set():
            if all(p.get_subscription_count() > 0 for p in self.publishers.values()):
                self._stop.wait(settle)
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> dict[str, int]:
        """Publish until the bag ends (or forever with ``loop``); returns messages sent per topic."""
        clock = self.node.get_clock()
        while not self._stop.is_set():
            start = time.monotonic()
            for topic, log_ns, data in self.bag.messages():
                if self._stop.is_set():
                    break
                pub = self.publishers.get(topic)
                if pub is None:
                    continue
                delay = start + (log_ns - self.bag.first_ns) / 1e9 / self.rate - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                if self.restamp and self.bag.topics[topic][0] in STAMPED_TYPES:
                    data = restamp(data, clock.now().nanoseconds)
                pub.publish(data)
                self.counts[topic] += 1
            if not self.loop:
                break
        return self.counts


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="replay", description=__doc__.splitlines()[0])
    p.add_argument("bag", type=Path, help="demo bag directory (or .mcap file)")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (2 = twice as fast)")
    p.add_argument("--loop", action="store_true", help="start over at the end until Ctrl-C")
    p.add_argument("--topics", nargs="+", help="replay only these bag topics")
    p.add_argument("--remap", action="append", default=[], metavar="FROM:=TO", help="publish a topic elsewhere")
    p.add_argument(
        "--robot-topics",
        action="store_true",
        help="publish on the PR2 topic names (" + ", ".join(f"{k} -> {v}" for k, v in ROBOT_TOPICS.items()) + ")",
    )
    p.add_argument("--restamp", action="store_true", help="set header stamps to the publishing time")
    p.add_argument(
        "--wait-subscribers",
        type=float,
        default=2.0,
        metavar="S",
        help="wait up to S seconds for subscribers before the first message",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import rclpy
    from rclpy.utilities import remove_ros_args

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(remove_ros_args(["replay", *argv])[1:])
    try:
        bag = open_bag(args.bag)
        remap = {**(ROBOT_TOPICS if args.robot_topics else {}), **parse_remaps(args.remap)}
    except ReplayError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    rclpy.init(args=["replay", *argv])
    node = rclpy.create_node("mil_replay")
    try:
        replayer = Replayer(
            node,
            bag,
            rate=args.rate,
            loop=args.loop,
            topics=args.topics,
            remap=remap,
            restamp_headers=args.restamp,
        )
        replayer.wait_for_subscribers(args.wait_subscribers)
        span = (bag.last_ns - bag.first_ns) / 1e9
        print(
            f"replaying {bag.path} ({span:.2f} s at {args.rate:g}x): "
            + ", ".join(f"{t} -> {replayer.out_topic[t]}" for t in replayer.selected),
            file=sys.stderr,
        )
        counts = replayer.run()
        print("published " + ", ".join(f"{t}: {n}" for t, n in counts.items()), file=sys.stderr)
    except ReplayError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
