"""VR controller buttons (sensor_msgs/Joy) -> start / stop / discard, on the press, not while held.

Joy messages repeat the button state at the controller's rate, so acting on "button is 1" would start
and stop a demo many times per press; only the transition from released to pressed counts. When the
start and stop buttons are the same index, that button toggles.
"""

from __future__ import annotations

from collections.abc import Sequence

START, STOP, DISCARD = "start", "stop", "discard"


class JoyButtons:
    """Edge detector over the configured button indices (-1 disables a button)."""

    def __init__(self, start: int, stop: int, discard: int) -> None:
        self.start, self.stop, self.discard = start, stop, discard
        self._previous: list[int] = []

    def presses(self, buttons: Sequence[int], recording: bool) -> list[str]:
        """Actions of the buttons pressed since the previous message, in start/stop/discard order."""
        now = [int(b) for b in buttons]
        pressed = {i for i, b in enumerate(now) if b and not (i < len(self._previous) and self._previous[i])}
        self._previous = now
        out = []
        if self.start >= 0 and self.start == self.stop:
            if self.start in pressed:
                out.append(STOP if recording else START)
        else:
            if self.start >= 0 and self.start in pressed:
                out.append(START)
            if self.stop >= 0 and self.stop in pressed:
                out.append(STOP)
        if self.discard >= 0 and self.discard in pressed:
            out.append(DISCARD)
        return out
