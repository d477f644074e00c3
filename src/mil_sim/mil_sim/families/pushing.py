"""The simulated pushing family of the seed paper (section 6.2, appendix A.2) on a torque-driven PR2 arm.

A 7-DoF arm (the PR2 right arm of :mod:`mil_sim.pr2_arm`, gravity-compensated, one motor per joint)
holds a short vertical pusher stick over a table. On the table lie a *target* object and a *distractor*
object from the procedural catalogue of :mod:`mil_sim.pushing_objects`, and a red goal circle (visual
only). The task is to push the target's centre onto the goal; which object is the target is what a
demonstration has to convey. A task is the (target, distractor) pair; the trial seed places the objects,
the goal and the arm's start posture.

Success follows the paper's evaluation code: the target's centre of mass lies (in x, y) on the goal circle,
of radius ``PushingConfig.goal_radius`` = 0.06 m, for at least 10 control steps of the 100-step episode
(counted, not necessarily consecutive). The original used a squared-distance threshold in the gym
pusher's units; 6 cm is roughly one object radius here, the same relation as there.

Policy inputs are a 125x125 RGB image from a fixed camera and the state (joint angles, joint velocities,
pusher tip position); actions are 7 joint torques in [-1, 1], scaled by each motor's gear. The paper's
experts were per-task TRPO policies; here a scripted operational-space pusher with privileged state plays
that role (see :class:`PushingExpert`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import mujoco
import numpy as np

from mil_sim.core import (
    SPLITS,
    Env,
    Expert,
    Observation,
    Task,
    TaskError,
    TaskFamily,
    check_positive,
    check_split,
)
from mil_sim.kinematics import dls_solve, orientation_error, site_jacobian
from mil_sim.pr2_arm import ARM_JOINT_NAMES, GRIPPER_JOINT_NAME, arm_joint_limits, arm_mjcf
from mil_sim.pushing_objects import Part, PushCatalogue, PushObjectSpec, push_catalogue

ROLES = ("target", "distractor")
TABLE_Z = 0.60  # table top height (m)
TABLE_CENTRE = (0.56, -0.20)
TABLE_HALF = (0.30, 0.42)
# The pusher: a capsule along the tool axis below the gripper; its tip is the end effector.
PUSHER_RADIUS = 0.014
PUSHER_FROM = 0.12  # along the palm's x axis (the tool axis), m
PUSHER_TIP = 0.24  # the tip site, 6 cm beyond the PR2 tool frame
PUSH_Z = TABLE_Z + 0.02  # tip centre height while pushing: the capsule clears the table by 6 mm
# Start pose: tip 15 cm over the table, pointing down; the joint angles reach it (solved offline by DLS IK).
HOME_TIP = np.array([0.45, -0.20, TABLE_Z + 0.15])
HOME_QPOS = np.array([-0.659, 0.0638, -1.3414, -1.8914, -1.5594, -1.8085, -1.9152])
TOOL_DOWN = np.column_stack([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # tool x axis -> world -z
# Motors: torque per unit action (N m), in the spirit of the PR2's effort limits (30 N m shoulder, 10 N m
# wrist) but lower, so that random torques do not fling the light simulated links around.
GEAR = np.array([16.0, 16.0, 8.0, 8.0, 3.0, 3.0, 2.0])
JOINT_DAMPING = np.array([2.0, 2.0, 1.0, 1.0, 0.3, 0.3, 0.2])  # N m s / rad
ARMATURE = np.array([0.08, 0.08, 0.04, 0.04, 0.02, 0.02, 0.02])  # kg m^2, motor reflected inertia
# Layout (base frame, m). Everything inside these boxes is reachable by the tip with the tool down.
TARGET_X, TARGET_Y = (0.46, 0.60), (-0.38, -0.02)
GOAL_X, GOAL_Y = (0.43, 0.64), (-0.44, 0.04)
REACH_X, REACH_Y = (0.40, 0.67), (-0.50, 0.10)  # pre-push points
DISTRACTOR_X, DISTRACTOR_Y = (0.38, 0.70), (-0.52, 0.10)
PUSH_DISTANCE = (0.12, 0.20)  # target start to goal
PRE_PUSH_STANDOFF = 0.035  # free space between the target's bounding circle and the tip before a push
CAMERA_POS = np.array([1.20, -0.20, 1.32])
CAMERA_TARGET = np.array([0.54, -0.20, TABLE_Z])


@dataclass
class PushingConfig:
    """Everything that shapes the pushing family; defaults follow the seed paper where it says.

    The camera renders at exactly the policy resolution (the paper fed 125x125 images), so
    ``preprocess`` only checks the shape.
    """

    image_width: int = 125
    image_height: int = 125
    control_rate_hz: float = 20.0
    episode_steps: int = 100  # 5 s, the paper's 100-step episodes
    horizon: int = 100  # T: the policy acts at every control step
    camera_every: int = 1
    physics_timestep: float = 0.002
    goal_radius: float = 0.06  # m; the target's centre must lie within it (see module doc)
    success_steps: int = 10  # steps on the goal needed, as in the paper
    n_objects: int = 128  # 105 train (as the paper) + 12 val + 11 test (as the paper)
    n_val_objects: int = 12
    n_test_objects: int = 11
    tasks_per_split: tuple[int, int, int] = (420, 36, 66)  # train, val, test
    task_seed: int = 11
    expert_action_noise: float = 0.04  # std of the expert's per-step torque noise (action units) at noise=1

    def __post_init__(self) -> None:
        for name in ("image_width", "image_height", "control_rate_hz", "episode_steps", "horizon", "camera_every",
                     "physics_timestep", "goal_radius", "success_steps", "n_objects", "n_val_objects",
                     "n_test_objects"):
            check_positive(name, getattr(self, name))
        for split, n in zip(SPLITS, self.tasks_per_split, strict=True):
            check_positive(f"tasks_per_split[{split}]", n)
        if self.episode_steps < self.horizon:
            raise TaskError(f"episode has {self.episode_steps} control steps, fewer than horizon {self.horizon}")
        if self.success_steps > self.episode_steps:
            raise TaskError(f"success_steps {self.success_steps} exceeds the episode's {self.episode_steps} steps")
        if not math.isclose(self.substeps * self.physics_timestep, 1.0 / self.control_rate_hz, rel_tol=1e-6):
            raise TaskError(
                f"control period 1/{self.control_rate_hz} s must be a whole multiple of "
                f"physics_timestep {self.physics_timestep} s"
            )
        n_train = self.n_objects - self.n_val_objects - self.n_test_objects
        if min(n_train, self.n_val_objects, self.n_test_objects) < 2:
            raise TaskError(
                f"every split needs >= 2 objects (target + distractor); n_objects={self.n_objects}, "
                f"n_val_objects={self.n_val_objects}, n_test_objects={self.n_test_objects}"
            )

    @property
    def substeps(self) -> int:
        """Physics steps per control step."""
        return max(1, round(1.0 / (self.control_rate_hz * self.physics_timestep)))


# ---------------------------------------------------------------------------------------------- scene


def _look_at_xyaxes(eye: np.ndarray, target: np.ndarray) -> str:
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return " ".join(f"{v:.5f}" for v in (*right, *up))


def _rgba(c: tuple[float, ...]) -> str:
    return " ".join(f"{v:.3f}" for v in c)


def _object_assets(o: PushObjectSpec) -> str:
    """Two materials per object (main and secondary parts), textured with a builtin pattern or flat."""
    if o.texture == "none":
        return f'<material name="mat_{o.object_id}" rgba="{_rgba(o.rgba)}"/><material name="mat2_{o.object_id}" rgba="{_rgba(o.rgba2)}"/>'
    builtin = {"checker": "checker", "gradient": "gradient", "stripes": "checker"}[o.texture]
    extra = ' mark="edge" markrgb="1 1 1"' if o.texture == "stripes" else ""
    return (
        f'<texture name="tex_{o.object_id}" type="cube" builtin="{builtin}" width="32" height="32" '
        f'rgb1="{_rgba(o.rgba[:3])}" rgb2="{_rgba(o.rgba2[:3])}"{extra}/>'
        f'<material name="mat_{o.object_id}" texture="tex_{o.object_id}" texrepeat="2 2"/>'
        f'<material name="mat2_{o.object_id}" rgba="{_rgba(o.rgba2)}"/>'
    )


def _part_geom(p: Part, o: PushObjectSpec, role: str, k: int) -> str:
    size = " ".join(f"{s:.4f}" for s in p.size)
    # A lying capsule's axis (geom z) points along the part's yawed x axis; other parts only yaw.
    orient = f'zaxis="{math.cos(p.yaw):.5f} {math.sin(p.yaw):.5f} 0"' if p.lying else f'euler="0 0 {p.yaw:.5f}"'
    mat = f"mat2_{o.object_id}" if p.secondary else f"mat_{o.object_id}"
    return (
        f'<geom name="{role}_g{k}" type="{p.shape}" size="{size}" pos="{p.pos[0]:.5f} {p.pos[1]:.5f} {p.pos[2]:.5f}" '
        f'{orient} material="{mat}" density="{o.density:.2f}" friction="{o.friction:.3f} 0.005 0.0001" condim="4"/>'
    )


def _object_body(o: PushObjectSpec, role: str) -> str:
    geoms = "".join(_part_geom(p, o, role, k) for k, p in enumerate(o.parts))
    return f'<body name="{role}" pos="0.5 0 {TABLE_Z}"><freejoint name="{role}_free"/>{geoms}</body>'


def scene_xml(objects: dict[str, PushObjectSpec], config: PushingConfig) -> str:
    """MJCF of one task's scene (arm without pusher and motors' gravity compensation, see build_model)."""
    assets = "".join(_object_assets(o) for o in objects.values())
    bodies = "".join(_object_body(o, role) for role, o in objects.items())
    motors = "".join(
        f'<motor name="{n.replace("_joint", "_motor")}" joint="{n}" gear="{g}" ctrlrange="-1 1" ctrllimited="true"/>'
        for n, g in zip(ARM_JOINT_NAMES, GEAR, strict=True)
    )
    cx, cy = TABLE_CENTRE
    hx, hy = TABLE_HALF
    return f"""
<mujoco model="mil_pushing">
  <compiler angle="radian"/>
  <option timestep="{config.physics_timestep}" gravity="0 0 -9.81" integrator="implicitfast"/>
  <visual><global offwidth="{max(640, config.image_width)}" offheight="{max(480, config.image_height)}"/>
    <headlight ambient="0.4 0.4 0.4" diffuse="0.5 0.5 0.5"/><quality shadowsize="1024"/></visual>
  <asset>
    <texture name="floor_tex" type="2d" builtin="checker" width="64" height="64" rgb1="0.42 0.42 0.45" rgb2="0.36 0.36 0.39"/>
    <material name="floor_mat" texture="floor_tex" texrepeat="6 6"/>
    <texture name="wood" type="cube" builtin="flat" width="16" height="16" rgb1="0.66 0.52 0.36" mark="random" markrgb="0.6 0.46 0.3" random="0.3"/>
    <material name="table_mat" texture="wood"/>
    {assets}
  </asset>
  <worldbody>
    <light pos="0.6 -0.2 2.2" dir="0 0 -1" diffuse="0.55 0.55 0.55" castshadow="true"/>
    <geom name="floor" type="plane" size="3 3 0.1" material="floor_mat" contype="0" conaffinity="0"/>
    <geom name="table" type="box" pos="{cx} {cy} {TABLE_Z - 0.02}" size="{hx} {hy} 0.02" material="table_mat"
          contype="0" conaffinity="0"/>
    <geom name="table_top" type="plane" pos="{cx} {cy} {TABLE_Z}" size="{hx} {hy} 0.1" rgba="0 0 0 0" group="3"
          friction="0.2 0.005 0.0001"/>
    <body name="goal" pos="0.5 -0.2 {TABLE_Z}">
      <geom name="goal_disc" type="cylinder" size="{config.goal_radius} 0.0008" pos="0 0 0.0008" rgba="0.9 0.05 0.05 1"
            contype="0" conaffinity="0"/>
    </body>
    <camera name="scene_camera" pos="{" ".join(f"{v:.4f}" for v in CAMERA_POS)}"
            xyaxes="{_look_at_xyaxes(CAMERA_POS, CAMERA_TARGET)}" fovy="45"/>
    {arm_mjcf()}
    {bodies}
  </worldbody>
  <actuator>{motors}</actuator>
</mujoco>"""


def build_model(objects: dict[str, PushObjectSpec], config: PushingConfig) -> mujoco.MjModel:
    """Compile the scene, then turn the placing arm into a torque-driven pusher arm.

    The shared PR2 arm MJCF is edited through MjSpec rather than forked: the finger slides go (the
    pusher needs no gripper), every arm body gets gravity compensation (so torques only have to move the
    arm, as with the paper's gravity-free pusher arm), joints get motor-like damping and armature, and a
    colliding pusher capsule with a tip site is attached under the palm.
    """
    spec = mujoco.MjSpec.from_string(scene_xml(objects, config))
    for name in (GRIPPER_JOINT_NAME, "r_gripper_r_finger_joint"):
        spec.delete(spec.joint(name))
    for name, damping, armature in zip(ARM_JOINT_NAMES, JOINT_DAMPING, ARMATURE, strict=True):
        joint = spec.joint(name)
        joint.damping = [float(damping), 0.0, 0.0]
        joint.armature = float(armature)
    arm_root = spec.body("torso_lift_link")
    for body in arm_root.find_all(mujoco.mjtObj.mjOBJ_BODY):
        body.gravcomp = 1.0
    palm = spec.body("r_gripper_palm_link")
    palm.add_geom(
        name="pusher",
        type=mujoco.mjtGeom.mjGEOM_CAPSULE,
        fromto=[PUSHER_FROM, 0.0, 0.0, PUSHER_TIP, 0.0, 0.0],
        size=[PUSHER_RADIUS, 0.0, 0.0],
        rgba=[0.95, 0.95, 0.95, 1.0],
        friction=[0.5, 0.005, 0.0001],
        priority=1,  # the tip's friction decides tip-object contacts, not the object's
        density=800.0,
    )
    palm.add_site(name="pusher_tip", pos=[PUSHER_TIP, 0.0, 0.0], size=[0.004, 0.0, 0.0], rgba=[1.0, 0.0, 0.0, 0.0])
    return spec.compile()
