"""End-effector twist -> PR2 right-arm joint velocities (damped least squares on the 7-DoF arm).

The Jacobian comes from a MuJoCo model of the arm alone, built from the same PR2 kinematics the sim
uses (mil_sim.pr2_arm), so the bridge needs nothing but joint positions: it works against the sim and
against a real PR2 alike. Joint limits are respected in two ways: a joint at (or within ``margin`` of)
a position limit may not move further out, and the whole velocity vector is scaled so every joint
stays within its velocity limit (scaling keeps the direction of the end-effector motion).
"""

from __future__ import annotations

import mujoco
import numpy as np

from mil_sim.kinematics import dls_solve, scale_to_limits, site_jacobian
from mil_sim.pr2_arm import ARM_JOINT_NAMES, ARM_VELOCITY_LIMITS, arm_joint_limits, arm_mjcf

TOOL_SITE = "r_gripper_tool_frame"


class ArmIK:
    """Differential IK for the PR2 right arm; positions in the arm's base frame (base_link)."""

    def __init__(
        self, damping: float = 0.05, limit_margin: float = 0.02, velocity_limits: np.ndarray | None = None
    ) -> None:
        xml = f'<mujoco><option gravity="0 0 0"/><worldbody>{arm_mjcf()}</worldbody></mujoco>'
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        self._qadr = np.array([self.model.joint(n).qposadr[0] for n in ARM_JOINT_NAMES])
        self._dof = np.array([self.model.joint(n).dofadr[0] for n in ARM_JOINT_NAMES])
        self._site = self.model.site(TOOL_SITE).id
        self.damping = damping
        self.limit_margin = limit_margin
        self.limits = arm_joint_limits()
        self.velocity_limits = ARM_VELOCITY_LIMITS if velocity_limits is None else np.asarray(velocity_limits)

    def _set(self, q: np.ndarray) -> None:
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (len(ARM_JOINT_NAMES),) or not np.all(np.isfinite(q)):
            raise ValueError(f"expected {len(ARM_JOINT_NAMES)} finite joint positions, got {q!r}")
        self.data.qpos[self._qadr] = q
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)

    def tool_pose(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tool frame position (3,) and rotation matrix (3, 3) at joint positions q."""
        self._set(q)
        return self.data.site_xpos[self._site].copy(), self.data.site_xmat[self._site].reshape(3, 3).copy()

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        self._set(q)
        return site_jacobian(self.model, self.data, self._site, self._dof)

    def joint_velocities(self, q: np.ndarray, twist: np.ndarray) -> np.ndarray:
        """Joint velocities that produce ``twist`` (vx vy vz wx wy wz, base frame) as closely as limits allow."""
        twist = np.asarray(twist, dtype=np.float64)
        if twist.shape != (6,) or not np.all(np.isfinite(twist)):
            raise ValueError(f"expected a finite 6-D twist, got {twist!r}")
        jac = self.jacobian(q)
        qdot = dls_solve(jac, twist, self.damping)
        blocked = self._blocked(np.asarray(q), qdot)
        if blocked.any():  # re-solve with the blocked joints removed, so the others compensate
            free = ~blocked
            qdot = np.zeros_like(qdot)
            qdot[free] = dls_solve(jac[:, free], twist, self.damping)
            qdot[self._blocked(np.asarray(q), qdot)] = 0.0
        return scale_to_limits(qdot, self.velocity_limits)

    def _blocked(self, q: np.ndarray, qdot: np.ndarray) -> np.ndarray:
        at_low = (q <= self.limits.lower + self.limit_margin) & (qdot < 0)
        at_high = (q >= self.limits.upper - self.limit_margin) & (qdot > 0)
        return at_low | at_high
