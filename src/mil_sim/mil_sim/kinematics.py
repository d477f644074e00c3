"""Damped least-squares differential IK, shared by the sim's end-effector velocity interface and the bridge.

Damping keeps joint speeds bounded near singularities (an outstretched arm, aligned wrist axes), where a
plain pseudo-inverse would command huge joint velocities. The damping is adaptive (Nakamura & Hanafusa):
zero while the smallest singular value of the Jacobian is above ``threshold``, growing to ``damping``
at the singularity, so away from singularities the commanded twist is tracked exactly.
"""

from __future__ import annotations

import mujoco
import numpy as np


def dls_solve(jacobian: np.ndarray, twist: np.ndarray, damping: float = 0.05, threshold: float = 0.1) -> np.ndarray:
    """Joint velocities qdot minimising ||J qdot - twist||^2 + lambda^2 ||qdot||^2, lambda adaptive."""
    j = np.asarray(jacobian, dtype=np.float64)
    sigma_min = np.linalg.svd(j, compute_uv=False)[-1] if min(j.shape) else 0.0
    lam2 = 0.0 if sigma_min >= threshold else damping**2 * (1.0 - (sigma_min / threshold) ** 2)
    jjt = j @ j.T + max(lam2, 1e-12) * np.eye(j.shape[0])
    return j.T @ np.linalg.solve(jjt, np.asarray(twist, dtype=np.float64))


def scale_to_limits(qdot: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """Scale the whole joint velocity vector down (keeping its direction) until every joint is within limits."""
    ratio = np.max(np.abs(qdot) / limits)
    return qdot / ratio if ratio > 1.0 else qdot


def site_jacobian(model: mujoco.MjModel, data: mujoco.MjData, site_id: int, dof_ids: np.ndarray) -> np.ndarray:
    """6 x len(dof_ids) Jacobian (linear rows first, world frame) of a site w.r.t. the given dofs."""
    jacp = np.zeros((3, model.nv))
    jacr = np.zeros((3, model.nv))
    mujoco.mj_jacSite(model, data, jacp, jacr, site_id)
    return np.vstack([jacp[:, dof_ids], jacr[:, dof_ids]])


def orientation_error(current_xmat: np.ndarray, target_xmat: np.ndarray) -> np.ndarray:
    """Rotation vector (world frame) that turns ``current`` into ``target``: an angular velocity direction."""
    r = np.asarray(target_xmat).reshape(3, 3) @ np.asarray(current_xmat).reshape(3, 3).T
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, r.reshape(-1))
    vel = np.zeros(3)
    mujoco.mju_quat2Vel(vel, quat, 1.0)
    return vel
