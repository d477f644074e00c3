"""Keep what arrived before a stop: the messages the executor had not taken yet when the stop came.

A stop (button or service) runs in the recorder's default callback group, beside the data callbacks, and
the executor takes one message per subscription per turn: on a loaded machine the stop can run while
messages that arrived before it still wait in the subscriptions' queues. Closing the demo at once cut
them off (the last commands and frames of a demo, or in a test every command that had queued behind a
stalled executor). So a stop first lets the data callbacks catch up, up to the stop's time: a stream is
caught up when it has taken a message that arrived after the stop (queues are taken in arrival order),
or when it has taken nothing for ``idle_s`` (nothing left, or a stream with no publisher). No ROS here,
so the rule is tested without an executor.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable


class StopDrain:
    """Which messages a stopping demo still takes, and when it has all of them."""

    def __init__(
        self,
        topics: Iterable[str],
        idle_s: float = 0.1,
        max_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topics = tuple(topics)
        self.idle_s = idle_s
        self.max_s = max_s  # bounds the wait when the data callbacks cannot run (a single-threaded executor)
        self._clock = clock
        self._lock = threading.Lock()
        self._last_take: dict[str, float] = {}
        self._caught_up: set[str] = set()
        self.stop_ns: int | None = None  # set while a stop drains

    @property
    def active(self) -> bool:
        return self.stop_ns is not None

    def admits(self, topic: str, receipt_ns: int) -> bool:
        """Called for every message taken while recording: whether it belongs to the demo."""
        with self._lock:
            self._last_take[topic] = self._clock()
            if self.stop_ns is None or receipt_ns <= self.stop_ns:
                return True
            self._caught_up.add(topic)
            return False

    def begin(self, stop_ns: int) -> None:
        """The demo stops at ``stop_ns`` (the clock of the receipt times): later arrivals are left out."""
        with self._lock:
            self._caught_up = set()
            self.stop_ns = stop_ns

    def end(self) -> None:
        with self._lock:
            self.stop_ns = None

    def done(self) -> bool:
        """Every stream caught up with the stop or idle."""
        now = self._clock()
        with self._lock:
            return all(
                t in self._caught_up or now - self._last_take.get(t, -math.inf) >= self.idle_s for t in self.topics
            )

    def wait(self, sleep: Callable[[float], None] = time.sleep, poll_s: float = 0.005) -> bool:
        """Block until :meth:`done` (True) or ``max_s`` has passed (False)."""
        deadline = self._clock() + self.max_s
        while not self.done():
            if self._clock() >= deadline:
                return False
            sleep(poll_s)
        return True
