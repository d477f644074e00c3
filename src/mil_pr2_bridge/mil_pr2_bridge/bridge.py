"""The bridge's decision logic without ROS: latest twist + latest joint state -> joint velocity command.

Kept apart from the node so every safety rule is testable with plain numbers, and so the node is only
message plumbing. Time is passed in explicitly (seconds, any monotonic clock).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mil_pr2_bridge.arm_ik import ArmIK
from mil_pr2_bridge.safety import EStop, SafetyConfig, Watchdog, clamp_twist, workspace_guard

ARM_DOF = 7


@dataclass
class BridgeOutput:
    joint_velocities: np.ndarray  # (7,) rad/s, zeros whenever any guard stops the arm
    reason: str  # "ok" or why the arm is stopped


class Bridge:
    def __init__(self, safety: SafetyConfig | None = None, ik: ArmIK | None = None) -> None:
        self.safety = safety or SafetyConfig()
        self.ik = ik or ArmIK()
        self.estop = EStop()
        self.command_watchdog = Watchdog(self.safety.watchdog_timeout)
        self.state_watchdog = Watchdog(self.safety.state_timeout)
        self._twist = np.zeros(6)
        self._q: np.ndarray | None = None
        self._lo = np.asarray(self.safety.workspace_min, dtype=np.float64)
        self._hi = np.asarray(self.safety.workspace_max, dtype=np.float64)

    def command(self, twist: np.ndarray, now: float) -> None:
        """A new end-effector twist (vx vy vz wx wy wz, base frame); non-finite commands stop the arm."""
        twist = np.asarray(twist, dtype=np.float64)
        if twist.shape != (6,) or not np.all(np.isfinite(twist)):
            self._twist = np.zeros(6)
            raise ValueError(f"rejected twist {twist!r}: need 6 finite numbers")
        self._twist = twist
        self.command_watchdog.feed(now)

    def joint_state(self, q: np.ndarray, now: float) -> None:
        self._q = np.asarray(q, dtype=np.float64)
        self.state_watchdog.feed(now)

    def update(self, now: float) -> BridgeOutput:
        stop = np.zeros(ARM_DOF)
        if self.estop.engaged:
            return BridgeOutput(stop, f"e-stop: {self.estop.reason}")
        if self._q is None or not self.state_watchdog.alive(now):
            return BridgeOutput(stop, "no recent joint states")
        if not self.command_watchdog.alive(now):
            return BridgeOutput(stop, "no recent command (watchdog)")
        twist = clamp_twist(self._twist, self.safety.max_linear_speed, self.safety.max_angular_speed)
        position, _ = self.ik.tool_pose(self._q)
        twist = workspace_guard(position, twist, self._lo, self._hi)
        return BridgeOutput(self.ik.joint_velocities(self._q, twist), "ok")
