"""Safety limits between the policy and the arm: speed clamps, workspace box, watchdog, e-stop.

Each guard is a small pure object (no ROS) so it can be unit-tested on its own and reused by any front
end. Defaults are conservative for a PR2 arm working over a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SafetyConfig:
    max_linear_speed: float = 0.25  # m/s, norm of the linear part of the twist
    max_angular_speed: float = 0.6  # rad/s, norm of the angular part
    workspace_min: list[float] = field(default_factory=lambda: [0.25, -0.65, 0.62])  # base_link, m
    workspace_max: list[float] = field(default_factory=lambda: [0.85, 0.25, 1.25])
    watchdog_timeout: float = 0.2  # s without a command -> stop
    state_timeout: float = 0.5  # s without joint states -> stop

    def __post_init__(self) -> None:
        if self.max_linear_speed < 0 or self.max_angular_speed < 0:
            raise ValueError("speed limits must be >= 0")
        if self.watchdog_timeout <= 0 or self.state_timeout <= 0:
            raise ValueError("timeouts must be positive")
        lo, hi = np.asarray(self.workspace_min), np.asarray(self.workspace_max)
        if lo.shape != (3,) or hi.shape != (3,) or np.any(lo >= hi):
            raise ValueError(f"workspace box needs min < max in x, y, z: {self.workspace_min} / {self.workspace_max}")


def clamp_twist(twist: np.ndarray, max_linear: float, max_angular: float) -> np.ndarray:
    """Scale the linear and angular parts separately down to their norm limits (direction kept)."""
    out = np.array(twist, dtype=np.float64)
    for part, limit in ((slice(0, 3), max_linear), (slice(3, 6), max_angular)):
        n = np.linalg.norm(out[part])
        if n > limit:
            out[part] *= limit / n if n > 0 else 0.0
    return out


def workspace_guard(position: np.ndarray, twist: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Zero each linear velocity component that would push the tool further outside the box."""
    out = np.array(twist, dtype=np.float64)
    outward = ((position <= lo) & (out[:3] < 0)) | ((position >= hi) & (out[:3] > 0))
    out[:3][outward] = 0.0
    return out


class Watchdog:
    """True while the last ``feed`` is younger than ``timeout`` seconds."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.last: float | None = None

    def feed(self, now: float) -> None:
        self.last = now

    def alive(self, now: float) -> bool:
        return self.last is not None and now - self.last <= self.timeout


class EStop:
    """Latching emergency stop: once triggered it stays on until ``reset`` is called explicitly."""

    def __init__(self) -> None:
        self.engaged = False
        self.reason = ""

    def trigger(self, reason: str = "e-stop") -> None:
        if not self.engaged:
            self.engaged = True
            self.reason = reason

    def reset(self) -> None:
        self.engaged = False
        self.reason = ""
