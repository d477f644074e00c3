"""Bridge core: the IK produces the commanded twist, and every safety guard does its one job."""

from __future__ import annotations

import numpy as np
import pytest

from mil_pr2_bridge.arm_ik import ArmIK
from mil_pr2_bridge.bridge import Bridge
from mil_pr2_bridge.safety import EStop, SafetyConfig, Watchdog, clamp_twist, workspace_guard
from mil_sim.families.placing import HOME_QPOS

IK = ArmIK()


@pytest.mark.parametrize(
    "twist",
    [
        [0.1, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, -0.08, 0.05, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.3],
        [0.05, 0.05, -0.05, 0.1, -0.1, 0.2],
    ],
)
def test_commanded_twist_is_produced_away_from_singularities(twist: list[float]) -> None:
    q = HOME_QPOS
    qdot = IK.joint_velocities(q, np.array(twist))
    achieved = IK.jacobian(q) @ qdot
    np.testing.assert_allclose(achieved, twist, atol=0.01 * max(np.abs(twist)) + 1e-4)


def test_following_a_linear_twist_moves_the_tool_along_it() -> None:
    q = HOME_QPOS.copy()
    start, rot0 = IK.tool_pose(q)
    v = np.array([0.05, -0.03, -0.04])
    for _ in range(100):  # 1 s at 100 Hz
        q = q + 0.01 * IK.joint_velocities(q, np.concatenate([v, np.zeros(3)]))
    end, rot1 = IK.tool_pose(q)
    np.testing.assert_allclose(end - start, v, atol=2e-3)
    np.testing.assert_allclose(rot1, rot0, atol=1e-2)


def test_joint_velocity_limits_scale_the_whole_vector() -> None:
    ik = ArmIK(velocity_limits=np.full(7, 0.05))
    qdot = ik.joint_velocities(HOME_QPOS, np.array([0.3, 0, 0, 0, 0, 0]))
    assert np.max(np.abs(qdot)) == pytest.approx(0.05)
    unlimited = IK.joint_velocities(HOME_QPOS, np.array([0.3, 0, 0, 0, 0, 0]))
    np.testing.assert_allclose(qdot / np.linalg.norm(qdot), unlimited / np.linalg.norm(unlimited), atol=1e-9)


def test_joint_at_position_limit_does_not_move_further() -> None:
    q = HOME_QPOS.copy()
    q[3] = IK.limits.lower[3]  # elbow fully flexed
    for twist in np.eye(6) * 0.1:
        for sign in (1, -1):
            qdot = IK.joint_velocities(q, sign * twist)
            assert qdot[3] >= 0.0


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="finite 6-D twist"):
        IK.joint_velocities(HOME_QPOS, np.array([np.nan] * 6))
    with pytest.raises(ValueError, match="7 finite joint positions"):
        IK.joint_velocities(np.zeros(6), np.zeros(6))


def test_clamp_twist_limits_each_part_keeping_direction() -> None:
    out = clamp_twist(np.array([3.0, 4.0, 0.0, 0.0, 0.0, 2.0]), max_linear=0.5, max_angular=0.6)
    np.testing.assert_allclose(out, [0.3, 0.4, 0.0, 0.0, 0.0, 0.6])
    small = np.array([0.01, 0.0, 0.0, 0.0, 0.1, 0.0])
    np.testing.assert_array_equal(clamp_twist(small, 0.5, 0.6), small)


def test_workspace_guard_blocks_only_outward_motion() -> None:
    lo, hi = np.array([0.0, 0.0, 0.0]), np.array([1.0, 1.0, 1.0])
    twist = np.array([0.1, -0.1, 0.1, 0.2, 0.2, 0.2])
    np.testing.assert_array_equal(workspace_guard(np.array([0.5, 0.5, 0.5]), twist, lo, hi), twist)
    out = workspace_guard(np.array([1.0, 0.0, 0.5]), twist, lo, hi)  # at +x and -y faces
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.1, 0.2, 0.2, 0.2])
    inward = workspace_guard(np.array([1.2, 0.5, 0.5]), -twist, lo, hi)  # outside, moving back in
    np.testing.assert_array_equal(inward, -twist)


def test_watchdog_and_estop() -> None:
    dog = Watchdog(0.2)
    assert not dog.alive(0.0)
    dog.feed(1.0)
    assert dog.alive(1.2) and not dog.alive(1.21)
    stop = EStop()
    stop.trigger("button")
    stop.trigger("second")
    assert stop.engaged and stop.reason == "button"
    stop.reset()
    assert not stop.engaged


def test_bridge_stops_for_every_guard() -> None:
    bridge = Bridge(SafetyConfig(watchdog_timeout=0.2, state_timeout=0.5))
    twist = np.array([0.1, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert bridge.update(0.0).reason == "no recent joint states"
    bridge.joint_state(HOME_QPOS, 0.0)
    assert "watchdog" in bridge.update(0.0).reason
    bridge.command(twist, 0.0)
    out = bridge.update(0.1)
    assert out.reason == "ok" and np.abs(out.joint_velocities).max() > 0
    assert "watchdog" in bridge.update(0.25).reason  # commands stopped arriving: stop within 200 ms
    bridge.command(twist, 0.3)
    bridge.estop.trigger("test")
    assert bridge.update(0.31).reason.startswith("e-stop")
    bridge.command(twist, 0.32)
    assert bridge.update(0.33).reason.startswith("e-stop")  # latched
    bridge.estop.reset()
    assert bridge.update(0.34).reason == "ok"
    with pytest.raises(ValueError, match="rejected twist"):
        bridge.command(np.array([np.inf] * 6), 0.35)
    assert not np.any(bridge.update(0.36).joint_velocities)  # the bad command zeroed the twist
    for bad in ({"max_linear_speed": -1.0}, {"watchdog_timeout": 0.0}, {"workspace_min": [1, 1, 1]}):
        with pytest.raises(ValueError):
            SafetyConfig(**bad)


def test_bridge_applies_speed_clamp_before_ik() -> None:
    bridge = Bridge(SafetyConfig(max_linear_speed=0.05))
    bridge.joint_state(HOME_QPOS, 0.0)
    bridge.command(np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0]), 0.0)
    qdot = bridge.update(0.0).joint_velocities
    np.testing.assert_allclose(IK.jacobian(HOME_QPOS) @ qdot, [0.05, 0, 0, 0, 0, 0], atol=1e-3)
