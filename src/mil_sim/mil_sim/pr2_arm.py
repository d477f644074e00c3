"""The PR2 right arm as MJCF: joint names, axes, offsets and limits of the PR2 URDF (pr2_description).

Kinematics follow the real arm so that the bridge's IK, joint names and joint limits transfer to a
real PR2: shoulder 0.188 m right of the torso, 0.1 m shoulder offset, 0.4 m upper arm, 0.321 m forearm
and the tool frame 0.18 m beyond the wrist roll axis. Link shapes are simple capsules: the arm is
moved kinematically by the sim (it tracks commanded joint velocities exactly, as the PR2's stiff
controllers nearly do) and only the held object, the containers and the table collide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Joint name, axis, child offset from the previous joint (m), lower, upper limit (rad); None = continuous.
ARM_JOINTS: tuple[tuple[str, str, tuple[float, float, float], float | None, float | None], ...] = (
    ("r_shoulder_pan_joint", "0 0 1", (0.0, -0.188, 0.0), -2.1353981634, 0.5646018366),
    ("r_shoulder_lift_joint", "0 1 0", (0.1, 0.0, 0.0), -0.3536, 1.2963),
    ("r_upper_arm_roll_joint", "1 0 0", (0.0, 0.0, 0.0), -3.75, 0.65),
    ("r_elbow_flex_joint", "0 1 0", (0.4, 0.0, 0.0), -2.1213, -0.15),
    ("r_forearm_roll_joint", "1 0 0", (0.0, 0.0, 0.0), None, None),
    ("r_wrist_flex_joint", "0 1 0", (0.321, 0.0, 0.0), -2.0, -0.1),
    ("r_wrist_roll_joint", "1 0 0", (0.0, 0.0, 0.0), None, None),
)
ARM_JOINT_NAMES: tuple[str, ...] = tuple(j[0] for j in ARM_JOINTS)
GRIPPER_JOINT_NAME = "r_gripper_joint"
# PR2 arm joint velocity limits (rad/s), from the URDF safety controllers.
ARM_VELOCITY_LIMITS = np.array([2.088, 2.082, 3.27, 3.3, 3.6, 3.078, 3.6])
TOOL_OFFSET = 0.18  # r_gripper_tool_frame beyond the wrist roll joint
TORSO_HEIGHT = 0.94  # torso_lift_link above the floor, with the torso partly raised
TORSO_X = -0.05
GRIPPER_MAX_OPENING = 0.09  # m between the finger pads


@dataclass(frozen=True)
class JointLimits:
    lower: np.ndarray
    upper: np.ndarray

    def clip(self, q: np.ndarray) -> np.ndarray:
        return np.clip(q, self.lower, self.upper)


def arm_joint_limits() -> JointLimits:
    """Position limits; continuous joints get +-inf."""
    lo = np.array([-np.inf if j[3] is None else j[3] for j in ARM_JOINTS])
    hi = np.array([np.inf if j[4] is None else j[4] for j in ARM_JOINTS])
    return JointLimits(lo, hi)


def _joint_xml(name: str, axis: str, lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None:
        return f'<joint name="{name}" axis="{axis}" limited="false" damping="1"/>'
    return f'<joint name="{name}" axis="{axis}" range="{lo} {hi}" limited="true" damping="1"/>'


def arm_mjcf(held_object_xml: str = "") -> str:
    """The arm's body tree (to be placed inside <worldbody>) ending in the gripper and tool site.

    ``held_object_xml`` is not nested here: the held object is a free body welded to the palm so it can
    be released physically (see PlacingEnv).
    """
    link_style = 'contype="0" conaffinity="0" group="1"'
    links = {
        "r_shoulder_pan_joint": f'<geom type="cylinder" size="0.08 0.1" rgba="0.75 0.75 0.78 1" {link_style}/>',
        "r_shoulder_lift_joint": f'<geom type="sphere" size="0.07" rgba="0.3 0.3 0.32 1" {link_style}/>',
        "r_upper_arm_roll_joint": (
            f'<geom type="capsule" fromto="0.05 0 0 0.37 0 0" size="0.055" rgba="0.8 0.8 0.82 1" {link_style}/>'
        ),
        "r_elbow_flex_joint": f'<geom type="sphere" size="0.05" rgba="0.3 0.3 0.32 1" {link_style}/>',
        "r_forearm_roll_joint": (
            f'<geom type="capsule" fromto="0.04 0 0 0.29 0 0" size="0.045" rgba="0.8 0.8 0.82 1" {link_style}/>'
        ),
        "r_wrist_flex_joint": f'<geom type="sphere" size="0.035" rgba="0.3 0.3 0.32 1" {link_style}/>',
        "r_wrist_roll_joint": (
            f'<geom type="box" pos="0.07 0 0" size="0.04 0.045 0.025" rgba="0.25 0.25 0.27 1" {link_style}/>'
        ),
    }
    xml = ""
    closing = ""
    for name, axis, off, lo, hi in ARM_JOINTS:
        body = name.replace("_joint", "_link")
        xml += f'<body name="{body}" pos="{off[0]} {off[1]} {off[2]}">{_joint_xml(name, axis, lo, hi)}{links[name]}'
        closing += "</body>"
    finger = 'type="box" size="0.045 0.008 0.012" rgba="0.2 0.2 0.22 1" contype="0" conaffinity="0"'
    gripper = (
        '<body name="r_gripper_palm_link" pos="0 0 0">'
        f'<body name="r_gripper_l_finger" pos="0.135 0 0"><joint name="{GRIPPER_JOINT_NAME}" type="slide" '
        f'axis="0 1 0" range="0 {GRIPPER_MAX_OPENING / 2}" damping="5"/><geom pos="0 0.012 0" {finger}/></body>'
        '<body name="r_gripper_r_finger" pos="0.135 0 0"><joint name="r_gripper_r_finger_joint" type="slide" '
        f'axis="0 -1 0" range="0 {GRIPPER_MAX_OPENING / 2}" damping="5"/><geom pos="0 -0.012 0" {finger}/></body>'
        f'<site name="r_gripper_tool_frame" pos="{TOOL_OFFSET} 0 0" size="0.005" rgba="1 0 0 0"/>'
        "</body>"
    )
    torso = (
        f'<body name="torso_lift_link" pos="{TORSO_X} 0 {TORSO_HEIGHT}">'
        '<geom type="box" pos="-0.05 0 -0.35" size="0.15 0.17 0.42" rgba="0.85 0.85 0.87 1" '
        'contype="0" conaffinity="0"/>'
    )
    return torso + xml + gripper + closing + "</body>"


def gripper_equality_xml() -> str:
    """Couple the two finger slides so one command opens the gripper symmetrically, like the PR2's."""
    return f'<joint joint1="r_gripper_r_finger_joint" joint2="{GRIPPER_JOINT_NAME}" polycoef="0 1 0 0 0"/>'
