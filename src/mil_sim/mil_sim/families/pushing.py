"""The simulated pushing family of the seed paper (section 6.2, appendix A.2) on a torque-driven PR2 arm.

A 7-DoF arm (the PR2 right arm of :mod:`mil_sim.pr2_arm`, gravity-compensated, one motor per joint)
holds a short vertical stick ending in a small flat paddle (``PushingConfig.pusher = "round"``: a
puck) over a table. On the table lie a *target*
object and a *distractor* object from the procedural catalogue of :mod:`mil_sim.pushing_objects`, and a
red goal disc (visual only). The task is to push the target's centre onto the goal; which object is the
target is what a demonstration has to convey. A task is the (target, distractor) pair; the trial seed
places the objects (position and yaw), the goal and the arm's start posture.

Success follows the paper's evaluation code (``eval_success`` of the MIL release): the target's centre
of mass lies, in x and y, on the goal disc for at least 10 control steps of the 100-step episode, counted
over the whole episode, not necessarily in a row. The release thresholded the squared distance in the
gym pusher's own scene scale; here the goal disc has radius ``PushingConfig.goal_radius`` = 0.06 m,
about the size of a catalogue object, so "on the goal" means the centre is visibly on the red disc.

Policy inputs are a 125x125 RGB image from a fixed camera and the state (joint angles, joint velocities,
pusher tip position); actions are 7 joint torques in [-1, 1], scaled by each motor's gear. The paper's
experts were per-task TRPO policies; here a scripted operational-space pusher with privileged state plays
that role (see :class:`PushingExpert`).

``PushingConfig.action_space = "ee_twist"`` swaps the torques for the interface the product drives the
PR2 with (and placing uses): a 6-D tool twist (linear m/s, angular rad/s), tracked by a stiff Cartesian
velocity controller that runs inside the env at the physics rate, as a robot's own controller would.
The expert is the same, sending the tip velocity and paddle turn it would otherwise turn into torques.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import mujoco
import numpy as np

from mil_sim.core import (
    MOVED_NONE,
    SPLITS,
    Env,
    Expert,
    Landmarks,
    Observation,
    Task,
    TaskError,
    TaskFamily,
    check_positive,
    check_split,
    not_in_split,
)
from mil_sim.kinematics import dls_solve, orientation_error, site_jacobian
from mil_sim.mjcf_util import LazyRenderer, look_at_xyaxes, rgba_str
from mil_sim.pr2_arm import ARM_JOINT_NAMES, GRIPPER_JOINT_NAME, arm_joint_limits, arm_mjcf
from mil_sim.pushing_objects import Part, PushCatalogue, PushObjectSpec, push_catalogue

ROLES = ("target", "distractor")
TABLE_Z = 0.60  # table top height (m)
TABLE_CENTRE = (0.54, -0.21)
TABLE_HALF = (0.24, 0.40)
# An object counts as moved (PushingEnv.moved_role) when it ended this far from its start in the table
# plane: well above the millimetres an object settles or is grazed, well below a push (objects are 5-10 cm).
MOVED_M = 0.02
# The pusher: a stick along the tool axis below the gripper, ending in a tool whose centre (the tip site)
# is the end effector: by default a small flat paddle, which pushes objects stably (they settle flush
# against its face) but has a yaw to control; or a round puck (PushingConfig.pusher = "round"), a point
# contact the expert has to keep steering behind the object, but with no yaw that matters.
PUSHER_FROM = 0.12  # stick start along the palm's x axis (the tool axis), m
PUSHER_TIP = 0.24  # tool centre, 6 cm beyond the PR2 tool frame
STICK_RADIUS = 0.01
PADDLE_HALF_HEIGHT = 0.015  # along the tool axis (vertical when pushing)
PADDLE_HALF_WIDTH = 0.035  # along the palm y axis
PADDLE_HALF_THICKNESS = 0.008  # along the palm z axis: the face normal
PUCK_RADIUS = 0.02  # the round tool: a vertical cylinder as tall as the paddle
PUSH_Z = TABLE_Z + 0.022  # tip height while pushing: the paddle clears the table by 7 mm
PUSH_HEIGHT_BAND = 0.01  # a tip below PUSH_Z + this is at pushing height (the expert descends to 8 mm)
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
OBJECT_X, OBJECT_Y = (0.46, 0.60), (-0.38, -0.02)  # where both objects start
GOAL_X, GOAL_Y = (0.43, 0.64), (-0.44, 0.04)
REACH_X, REACH_Y = (0.40, 0.67), (-0.50, 0.10)  # pre-push points
PUSH_DISTANCE = (0.12, 0.20)  # each object's start to the goal
PRE_PUSH_STANDOFF = 0.035  # free space between the target's bounding circle and the tip before a push
PATH_CLEARANCE = 0.015  # free space between the distractor and the path the target and paddle sweep
ACTION_SPACES = ("joint_effort", "ee_twist")
PUSHERS = ("paddle", "round")
EXPERTS = ("phased", "stateless")
# Null-space posture gains (1/s^2, 1/s): the redundant elbow is held near the start posture.
KQ, KQD = 20.0, 8.0
CAMERA_POS = np.array([0.98, -0.21, 1.58])
CAMERA_TARGET = np.array([0.52, -0.21, TABLE_Z])


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
    tasks_per_split: tuple[int, int, int] = (420, 36, 74)  # train, val, test (74: the paper's test tasks)
    task_seed: int = 11
    expert_action_noise: float = 0.04  # std of the expert's per-step torque noise (action units) at noise=1
    action_space: str = "joint_effort"  # or "ee_twist": tool twist tracked by an in-env Cartesian controller
    twist_limits: tuple[float, float] = (0.4, 2.0)  # ee_twist: largest linear (m/s) / angular (rad/s) command
    twist_gains: tuple[float, float] = (200.0, 60.0)  # ee_twist controller: linear / angular velocity gain, 1/s
    expert_twist_noise: float = 0.01  # ee_twist: std of the expert's per-step velocity noise (m/s, rad/s)
    pusher: str = "paddle"  # or "round": a puck with no yaw to control (see the module constants)
    # ee_twist with the round tool: the Cartesian controller keeps the tool upright itself and ignores the
    # command's angular part, so the policy steers the tip alone (see PushingEnv.step for why)
    hold_tool_upright: bool = False
    # Diagnostic only: the state also carries the target's and the goal's true positions (x, y), so that
    # cloning the expert can be tested without perception. It gives the task away, so it is not for MIL.
    privileged_state: bool = False
    # The paper's pusher state has the arm's joint velocities. False leaves them out (reaching's state has
    # none either): under ee_twist control they echo the last command, so a cloned policy can continue the
    # ongoing motion instead of reading the scene (the copycat shortcut; docs/results.md, "clones the pusher
    # worse")
    state_joint_velocities: bool = True
    # "phased": the scripted expert keeps a phase (approach, descend, push, circle, hold) with hysteresis
    # between them; "stateless" reads its mode off the current scene alone, so the same state always gets
    # the same label: what DAgger needs when the expert relabels the states a policy reached
    expert: str = "phased"

    def __post_init__(self) -> None:
        for name in (
            "image_width",
            "image_height",
            "control_rate_hz",
            "episode_steps",
            "horizon",
            "camera_every",
            "physics_timestep",
            "goal_radius",
            "success_steps",
            "n_objects",
            "n_val_objects",
            "n_test_objects",
        ):
            check_positive(name, getattr(self, name))
        for split, n in zip(SPLITS, self.tasks_per_split, strict=True):
            check_positive(f"tasks_per_split[{split}]", n)
        if self.action_space not in ACTION_SPACES:
            raise TaskError(f"action_space must be one of {', '.join(ACTION_SPACES)}, got {self.action_space!r}")
        if self.pusher not in PUSHERS:
            raise TaskError(f"pusher must be one of {', '.join(PUSHERS)}, got {self.pusher!r}")
        if self.expert not in EXPERTS:
            raise TaskError(f"expert must be one of {', '.join(EXPERTS)}, got {self.expert!r}")
        if self.hold_tool_upright and (self.action_space != "ee_twist" or self.pusher != "round"):
            raise TaskError(
                "hold_tool_upright needs action_space ee_twist and pusher round (a paddle's yaw must be steered), "
                f"got {self.action_space} and {self.pusher}"
            )
        for name, pair in (("twist_limits", self.twist_limits), ("twist_gains", self.twist_gains)):
            for k, v in enumerate(pair):
                check_positive(f"{name}[{k}]", v)
        if self.twist_gains[0] * self.physics_timestep >= 1.0 or self.twist_gains[1] * self.physics_timestep >= 1.0:
            raise TaskError(f"twist_gains {self.twist_gains} must stay below 1/physics_timestep to be stable")
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

    @property
    def pusher_half_width(self) -> float:
        """The tool's half extent across the push: what must pass beside the other object."""
        return PUCK_RADIUS if self.pusher == "round" else PADDLE_HALF_WIDTH

    @property
    def pusher_half_depth(self) -> float:
        """The tool's half extent along the push: from its centre to the object it pushes."""
        return PUCK_RADIUS if self.pusher == "round" else PADDLE_HALF_THICKNESS


# ---------------------------------------------------------------------------------------------- scene


def _object_assets(o: PushObjectSpec) -> str:
    """Two materials per object (main and secondary parts), textured with a builtin pattern or flat."""
    if o.texture == "none":
        return (
            f'<material name="mat_{o.object_id}" rgba="{rgba_str(o.rgba)}"/>'
            f'<material name="mat2_{o.object_id}" rgba="{rgba_str(o.rgba2)}"/>'
        )
    builtin = {"checker": "checker", "gradient": "gradient", "stripes": "checker"}[o.texture]
    extra = ' mark="edge" markrgb="1 1 1"' if o.texture == "stripes" else ""
    return (
        f'<texture name="tex_{o.object_id}" type="cube" builtin="{builtin}" width="32" height="32" '
        f'rgb1="{rgba_str(o.rgba[:3])}" rgb2="{rgba_str(o.rgba2[:3])}"{extra}/>'
        f'<material name="mat_{o.object_id}" texture="tex_{o.object_id}" texrepeat="2 2"/>'
        f'<material name="mat2_{o.object_id}" rgba="{rgba_str(o.rgba2)}"/>'
    )


def _part_geom(p: Part, o: PushObjectSpec, role: str, k: int) -> str:
    size = " ".join(f"{s:.4f}" for s in p.size)
    # A lying capsule's axis (geom z) points along the part's yawed x axis; other parts only yaw.
    if p.lying:
        orient = f'zaxis="{math.cos(p.yaw):.5f} {math.sin(p.yaw):.5f} 0"'
    else:
        orient = f'euler="0 0 {p.yaw:.5f}"'
    mat = f"mat2_{o.object_id}" if p.secondary else f"mat_{o.object_id}"
    pos = " ".join(f"{v:.5f}" for v in p.pos)
    # condim 4 adds a little torsional friction, so a single-contact part does not spin freely in place.
    return (
        f'<geom name="{role}_g{k}" type="{p.shape}" size="{size}" pos="{pos}" {orient} material="{mat}" '
        f'density="{o.density:.2f}" friction="{o.friction:.3f} 0.005 0.0001" condim="4"/>'
    )


def _object_body(o: PushObjectSpec, role: str) -> str:
    geoms = "".join(_part_geom(p, o, role, k) for k, p in enumerate(o.parts))
    return f'<body name="{role}" pos="0.5 0 {TABLE_Z}"><freejoint name="{role}_free"/>{geoms}</body>'


def scene_xml(objects: dict[str, PushObjectSpec], config: PushingConfig) -> str:
    """MJCF of one task's scene (arm without pusher and motors' gravity compensation, see build_model)."""
    assets = "".join(_object_assets(o) for o in objects.values())
    bodies = "".join(_object_body(o, role) for role, o in objects.items())
    motors = "".join(
        f'<motor name="{n.replace("_joint", "_motor")}" joint="{n}" gear="{g}" ctrlrange="-1 1"/>'
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
    <texture name="floor_tex" type="2d" builtin="checker" width="64" height="64" rgb1="0.42 0.42 0.45"
             rgb2="0.36 0.36 0.39"/>
    <material name="floor_mat" texture="floor_tex" texrepeat="6 6"/>
    <texture name="wood" type="cube" builtin="flat" width="16" height="16" rgb1="0.66 0.52 0.36" mark="random"
             markrgb="0.6 0.46 0.3" random="0.3"/>
    <material name="table_mat" texture="wood"/>
    {assets}
  </asset>
  <worldbody>
    <light pos="0.6 -0.2 2.2" dir="0 0 -1" diffuse="0.55 0.55 0.55" castshadow="true"/>
    <geom name="floor" type="plane" size="3 3 0.1" material="floor_mat" contype="0" conaffinity="0"/>
    <geom name="table" type="box" pos="{cx} {cy} {TABLE_Z - 0.02}" size="{hx} {hy} 0.02" material="table_mat"
          contype="0" conaffinity="0"/>
    <geom name="table_top" type="plane" pos="{cx} {cy} {TABLE_Z}" size="{hx} {hy} 0.1" rgba="0 0 0 0"
          group="3" friction="0.2 0.005 0.0001"/>
    <body name="goal" pos="0.5 -0.2 {TABLE_Z}">
      <geom name="goal_disc" type="cylinder" size="{config.goal_radius} 0.0008" pos="0 0 0.0008"
            rgba="0.9 0.05 0.05 1" contype="0" conaffinity="0"/>
    </body>
    <camera name="scene_camera" pos="{" ".join(f"{v:.4f}" for v in CAMERA_POS)}"
            xyaxes="{look_at_xyaxes(CAMERA_POS, CAMERA_TARGET)}" fovy="40"/>
    {arm_mjcf()}
    {bodies}
  </worldbody>
  <actuator>{motors}</actuator>
</mujoco>"""


def build_model(objects: dict[str, PushObjectSpec], config: PushingConfig) -> mujoco.MjModel:
    """Compile the scene, then turn the placing arm into a torque-driven pusher arm.

    The shared PR2 arm MJCF is edited through MjSpec rather than forked: the finger slides go (the
    pusher needs no gripper), every arm body gets gravity compensation (so torques only have to move the
    arm, as with the paper's gravity-free pusher arm), joints get motor-like damping and armature, and the
    pusher (a visual stick ending in a colliding paddle, whose centre is the ``pusher_tip`` site) is
    attached under the palm. The other arm links do not collide, as in the placing family.
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
        name="pusher_stick",
        type=mujoco.mjtGeom.mjGEOM_CAPSULE,
        fromto=[PUSHER_FROM, 0.0, 0.0, PUSHER_TIP - PADDLE_HALF_HEIGHT, 0.0, 0.0],
        size=[STICK_RADIUS, 0.0, 0.0],
        rgba=[0.95, 0.95, 0.95, 1.0],
        contype=0,
        conaffinity=0,
        density=800.0,
    )
    if config.pusher == "round":  # a cylinder along the tool axis
        shape = {
            "type": mujoco.mjtGeom.mjGEOM_CYLINDER,
            "fromto": [PUSHER_TIP - PADDLE_HALF_HEIGHT, 0.0, 0.0, PUSHER_TIP + PADDLE_HALF_HEIGHT, 0.0, 0.0],
            "size": [PUCK_RADIUS, 0.0, 0.0],
        }
    else:
        shape = {
            "type": mujoco.mjtGeom.mjGEOM_BOX,
            "pos": [PUSHER_TIP, 0.0, 0.0],
            "size": [PADDLE_HALF_HEIGHT, PADDLE_HALF_WIDTH, PADDLE_HALF_THICKNESS],
        }
    palm.add_geom(
        name="pusher",
        rgba=[0.95, 0.95, 0.95, 1.0],
        friction=[0.5, 0.005, 0.0001],
        priority=1,  # the tool's friction decides tool-object contacts, not the object's
        density=800.0,
        **shape,
    )
    palm.add_site(name="pusher_tip", pos=[PUSHER_TIP, 0.0, 0.0], size=[0.004, 0.0, 0.0], rgba=[1, 0, 0, 0])
    return spec.compile()


# ------------------------------------------------------------------------------------------------ env


@dataclass(frozen=True)
class Layout:
    """Where one trial puts things (x, y in the base frame; yaw in rad)."""

    goal: np.ndarray
    target: np.ndarray
    target_yaw: float
    distractor: np.ndarray
    distractor_yaw: float
    q0: np.ndarray  # arm start posture


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = float(np.clip(np.dot(p - a, ab) / max(float(np.dot(ab, ab)), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


def _inside(p: np.ndarray, xs: tuple[float, float], ys: tuple[float, float]) -> bool:
    return xs[0] <= p[0] <= xs[1] and ys[0] <= p[1] <= ys[1]


def pre_push_standoff(o: PushObjectSpec, config: PushingConfig) -> float:
    """Tip-to-centre distance at the pre-push point behind ``o`` (the layout and the expert agree on it)."""
    return o.radius + config.pusher_half_depth + PRE_PUSH_STANDOFF


def sample_layout(
    rng: np.random.Generator, target: PushObjectSpec, distractor: PushObjectSpec, config: PushingConfig
) -> Layout:
    """Seeded rejection sampling of goal, target and distractor positions.

    Both objects are placed by one symmetric rule, so the layout does not say which one is the target:
    only the demonstration does. (An earlier sampler placed the target 12-20 cm from the goal and kept the
    distractor out of a wide corridor around the push, which put it farther from the goal than the
    target in 99.4% of scenes; "push the object nearer the goal" then needed no demo.) Each object lies
    12-20 cm from the goal on the table's central band, with its pre-push point reachable, and off the
    path the other one and the paddle would sweep to the goal by ``PATH_CLEARANCE``; so the distractor
    can distract but not block, whichever object a policy pushes.
    """
    objects = (target, distractor)
    standoffs = [pre_push_standoff(o, config) for o in objects]
    # Object i stays off object j's path by its own radius + the wider of object j and the tool.
    tool = config.pusher_half_width
    clearances = [objects[i].radius + max(objects[1 - i].radius, tool) + PATH_CLEARANCE for i in (0, 1)]
    distances = (max(PUSH_DISTANCE[0], *clearances), PUSH_DISTANCE[1])
    for _ in range(100_000):
        goal = np.array([rng.uniform(*GOAL_X), rng.uniform(*GOAL_Y)])
        pos, pre = [], []
        for standoff in standoffs:
            a = rng.uniform(-math.pi, math.pi)
            d = np.array([math.cos(a), math.sin(a)])
            pos.append(goal - rng.uniform(*distances) * d)
            pre.append(pos[-1] - standoff * d)
        if not all(
            _inside(p, OBJECT_X, OBJECT_Y) and _inside(q, REACH_X, REACH_Y) for p, q in zip(pos, pre, strict=True)
        ):
            continue
        if all(_segment_distance(pos[i], pre[1 - i], goal) >= clearances[i] for i in (0, 1)):
            obj, dis = pos
            break
    else:
        raise RuntimeError("could not lay out the pushing scene; the workspace is too small for these objects")
    return Layout(
        goal=goal,
        target=obj,
        target_yaw=float(rng.uniform(-math.pi, math.pi)),
        distractor=dis,
        distractor_yaw=float(rng.uniform(-math.pi, math.pi)),
        q0=arm_joint_limits().clip(HOME_QPOS + rng.normal(0.0, 0.03, size=7)),
    )


class PushingEnv(Env):
    """One pushing trial: motor torques (or a tool twist) in, physics at ``physics_timestep``, on-goal steps counted."""

    def __init__(self, family: PushingFamily, task: Task, trial_seed: int, render: bool) -> None:
        self.family = family
        self.config = family.config
        self.task = task
        self.trial_seed = trial_seed
        self._render_obs = render
        self.object_specs = {role: family.catalogue.objects[task.objects[role]] for role in ROLES}
        self.model = build_model(self.object_specs, self.config)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.arm_qadr = np.array([m.joint(n).qposadr[0] for n in ARM_JOINT_NAMES])
        self.arm_dofs = np.array([m.joint(n).dofadr[0] for n in ARM_JOINT_NAMES])
        self._obj_qadr = {role: m.joint(f"{role}_free").qposadr[0] for role in ROLES}
        self._obj_dof = {role: m.joint(f"{role}_free").dofadr[0] for role in ROLES}
        self._obj_body = {role: m.body(role).id for role in ROLES}
        self._goal_body = m.body("goal").id
        self.tip_site = m.site("pusher_tip").id
        self._pusher_geom = m.geom("pusher").id
        self._camera = LazyRenderer(self.model, self.config.image_width, self.config.image_height, "scene_camera")
        self.layout: Layout | None = None
        self.on_goal_steps = 0
        self._t = 0.0
        self.episode_id = 0  # bumped by reset(), so experts re-plan for a new episode

    # -- trial set-up ---------------------------------------------------------------------------
    def reset(self) -> Observation:
        rng = np.random.default_rng([self.trial_seed, 5171])
        layout = sample_layout(rng, self.object_specs["target"], self.object_specs["distractor"], self.config)
        self.layout = layout
        mujoco.mj_resetData(self.model, self.data)
        self.model.body_pos[self._goal_body] = [layout.goal[0], layout.goal[1], TABLE_Z]
        self.set_object_pose("target", layout.target, layout.target_yaw)
        self.set_object_pose("distractor", layout.distractor, layout.distractor_yaw)
        self.data.qpos[self.arm_qadr] = layout.q0
        self.on_goal_steps = 0
        self._t = 0.0
        self.episode_id += 1
        mujoco.mj_forward(self.model, self.data)
        return self._observe()

    def set_object_pose(self, role: str, xy: np.ndarray, yaw: float = 0.0) -> None:
        """Put an object at rest on the table with its centre of mass above ``xy`` (also for tests)."""
        com_offset = self._com_offset(role)
        c, s = math.cos(yaw), math.sin(yaw)
        rotated = np.array([c * com_offset[0] - s * com_offset[1], s * com_offset[0] + c * com_offset[1]])
        origin_xy = np.asarray(xy, dtype=np.float64) - rotated
        adr, dof = self._obj_qadr[role], self._obj_dof[role]
        self.data.qpos[adr : adr + 3] = [origin_xy[0], origin_xy[1], TABLE_Z]
        self.data.qpos[adr + 3 : adr + 7] = [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]
        self.data.qvel[dof : dof + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def _com_offset(self, role: str) -> np.ndarray:
        """Centre of mass in the body frame (parts are centred already, so this is ~0; kept exact)."""
        return self.model.body_ipos[self._obj_body[role]][:2]

    # -- stepping -------------------------------------------------------------------------------
    def step(self, action: np.ndarray) -> Observation:
        command = self.family.clip_action(np.asarray(action, dtype=np.float64))
        if self.family.action_kind == "ee_twist":
            kv, kw = self.config.twist_gains
            for _ in range(self.config.substeps):  # the robot's Cartesian controller, at the physics rate
                jac = site_jacobian(self.model, self.data, self.tip_site, self.arm_dofs)
                twist = jac @ self.data.qvel[self.arm_dofs]
                angular = command[3:]
                if self.config.hold_tool_upright:
                    # Why: a policy that commands the tool's angular velocity too integrates its small tilt
                    # errors, which the expert (always upright) never shows it how to undo: on its own path
                    # the tool leans over (docs/results.md, "Pushing"). A round tool needs no turn, so the
                    # controller holds it upright, as a Cartesian controller with a fixed tool axis would.
                    xmat = self.data.site_xmat[self.tip_site].reshape(3, 3)
                    angular = PushingExpert.TWIST_TURN_GAIN * upright_error(xmat)  # as the expert would
                acc = np.concatenate([kv * (command[:3] - twist[:3]), kw * (angular - twist[3:])])
                self.data.ctrl[:] = saturate(resolved_acceleration_torques(self, jac, acc) / GEAR)
                mujoco.mj_step(self.model, self.data)
        else:
            self.data.ctrl[:] = command
            mujoco.mj_step(self.model, self.data, nstep=self.config.substeps)
        self._t += self.config.substeps * self.config.physics_timestep
        if self.target_on_goal():
            self.on_goal_steps += 1
        return self._observe()

    def end_episode(self) -> None:
        """Nothing happens after the last step: success was counted during the episode."""

    # -- scoring --------------------------------------------------------------------------------
    def object_position(self, role: str) -> np.ndarray:
        """Centre of mass of an object (world = base frame)."""
        return self.data.xipos[self._obj_body[role]].copy()

    def pusher_touches(self, role: str) -> bool:
        """Whether the pusher is in contact with an object (privileged: used by the expert)."""
        geoms = self.data.contact.geom[: self.data.ncon]
        if len(geoms) == 0:
            return False
        bodies = self.model.geom_bodyid[geoms]
        pusher = geoms == self._pusher_geom
        other = bodies == self._obj_body[role]
        return bool(np.any((pusher[:, 0] & other[:, 1]) | (pusher[:, 1] & other[:, 0])))

    def goal_position(self) -> np.ndarray:
        return self.data.xpos[self._goal_body].copy()

    def target_on_goal(self) -> bool:
        return self.target_distance() <= self.config.goal_radius

    def success(self) -> bool:
        """Paper's criterion: the target's centre was on the goal circle for >= success_steps steps so far."""
        return self.on_goal_steps >= self.config.success_steps

    def target_distance(self) -> float:
        """The target object's centre from the goal's centre (at the end of the episode: where it ended)."""
        return float(np.linalg.norm(self.object_position("target")[:2] - self.goal_position()[:2]))

    def landmarks(self) -> Landmarks:
        """Both objects' centres of mass and the goal's centre."""
        return Landmarks(
            objects={r: self.object_position(r)[:2] for r in ROLES}, markers={"goal": self.goal_position()[:2]}
        )

    def chosen_role(self) -> str:
        """The object that ended nearest to the goal: the one the policy pushed there, if any."""
        goal = self.goal_position()[:2]
        return min(ROLES, key=lambda r: float(np.linalg.norm(self.object_position(r)[:2] - goal)))

    def moved_role(self) -> str:
        """The object that ended furthest from its start, if at least MOVED_M: the one the policy pushed."""
        if self.layout is None:
            raise RuntimeError("moved_role() needs a reset() first: there is no start to compare with")
        # reset() puts each object's centre of mass at its layout position, which object_position reads.
        start = {"target": self.layout.target, "distractor": self.layout.distractor}
        moved = {r: float(np.linalg.norm(self.object_position(r)[:2] - start[r])) for r in ROLES}
        role = max(moved, key=moved.__getitem__)
        return role if moved[role] >= MOVED_M else MOVED_NONE

    # -- observation ----------------------------------------------------------------------------
    def _observe(self) -> Observation:
        image = self.render_camera() if self._render_obs else np.zeros((0, 0, 3), np.uint8)
        state = self.robot_state()
        if not self.config.state_joint_velocities:
            state = np.delete(state, JOINT_VELOCITY_ENTRIES)
        if self.config.privileged_state:
            scene = [*self.object_position("target")[:2], *self.goal_position()[:2]]
            state = np.concatenate([state, np.asarray(scene, dtype=state.dtype)])
        return Observation(image=image, state=state, time=self._t)

    def tip_position(self) -> np.ndarray:
        return self.data.site_xpos[self.tip_site].copy()

    def robot_state(self) -> np.ndarray:
        """Joint angles (7), joint velocities (7), pusher tip position (3), as the paper's pusher state."""
        return np.concatenate(
            [self.data.qpos[self.arm_qadr], self.data.qvel[self.arm_dofs], self.data.site_xpos[self.tip_site]]
        ).astype(np.float32)

    def render_camera(self) -> np.ndarray:
        return self._camera.render(self.data)

    def ee_pose(self) -> np.ndarray:
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self.tip_site])
        return np.concatenate([self.data.site_xpos[self.tip_site], quat])

    def joint_names(self) -> tuple[str, ...]:
        return ARM_JOINT_NAMES

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self.arm_qadr].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self.arm_dofs].copy()

    def gripper_is_open(self) -> bool:
        return False  # the pusher arm has no gripper; recorded as closed throughout

    def close(self) -> None:
        self._camera.close()


# --------------------------------------------------------------------------------------------- expert


def tool_yaw(xmat: np.ndarray) -> float:
    """The tool's turn about the vertical: the heading of the paddle's face normal (the tip site's z axis)."""
    return math.atan2(xmat[1, 2], xmat[0, 2])


def upright_error(xmat: np.ndarray, yaw: float | None = None) -> np.ndarray:
    """Rotation (world frame) from the tool's orientation ``xmat`` to pointing straight down at ``yaw``
    (default: its own, so only the tilt is corrected)."""
    return orientation_error(xmat, paddle_rotation(tool_yaw(xmat) if yaw is None else yaw))


def paddle_rotation(yaw: float) -> np.ndarray:
    """Tool pointing down, turned about the vertical so the paddle's face normal is (cos yaw, sin yaw, 0)."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ TOOL_DOWN


class PushingExpert:
    """Scripted pusher with privileged state, standing in for the paper's per-task TRPO experts.

    Phases: *approach* the pre-push point (behind the target on the goal->target line) at a safe height
    over the objects, *descend* to pushing height, *push* along the line with a speed that tapers off
    near the goal while steering the paddle back onto the line as the object drifts, *circle* around
    the object at table height when the paddle has fallen too far off the line, and *hold* once the
    target's centre is near the goal. The paddle's face is kept square to the push direction (a round
    tool is only kept upright).

    Each phase yields a desired tip velocity and paddle yaw; resolved-acceleration (operational-space)
    control through the arm's mass matrix turns them into joint torques, with the redundant elbow held
    near the start posture in the null space and, while the paddle touches the target, a feed-forward
    force that overcomes the object's friction (at a 20 Hz torque rate the velocity gain must stay below
    ~1/dt, too soft to supply it by feedback). Noise changes per-demo speeds, heights, stand-offs and aim
    and adds Gaussian torque noise, so demos differ the way TRPO rollouts do.
    """

    KV = 20.0  # 1/s: task-space velocity tracking gain
    KP_TO_VEL = 5.0  # 1/s: position error -> desired velocity
    KR, KW = 150.0, 25.0  # orientation stiffness / damping (1/s^2, 1/s)
    TWIST_TURN_GAIN = KR / KW  # 1/s: rotation error -> commanded angular velocity under ee_twist
    MAX_ROT_ERROR = 0.4  # rad: larger yaw errors are closed at a bounded rate, not with a torque spike
    LAT_GAIN = 8.0  # 1/s: lateral re-alignment onto the goal line while pushing
    CIRCLE_BELOW = 0.7  # cos of the paddle's angle off the line behind the target that starts a circle
    ALIGN_BAND = 0.15  # forward speed ramps up as that cosine exceeds CIRCLE_BELOW by this much
    STOP_DIST = 0.012  # target within this of the goal: stop pushing
    RESUME_DIST = 0.03  # ... and push again if it ends up farther than this

    def __init__(self, env: PushingEnv, seed: int, noise: float = 1.0) -> None:
        self.env = env
        self.rng = np.random.default_rng([seed, 7331])
        self.noise = noise
        self.phase = "approach"
        self._planned_for: int | None = None

    def _plan(self) -> None:
        """Per-demo parameters, drawn when the first observation of an episode arrives."""
        env, rng, noise = self.env, self.rng, self.noise
        specs = env.object_specs
        target = specs["target"]
        self.phase = "approach"
        self.push_speed = 0.14 * (1.0 + noise * rng.uniform(-0.15, 0.15))
        self.travel_speed = 0.35 * (1.0 + noise * rng.uniform(-0.15, 0.1))
        top = TABLE_Z + max(s.height for s in specs.values())
        self.safe_z = max(top + PADDLE_HALF_HEIGHT + 0.03, PUSH_Z + 0.06) + noise * rng.uniform(0.0, 0.03)
        self.standoff = pre_push_standoff(target, env.config)
        self.standoff += noise * rng.uniform(-0.01, 0.01)
        self.circle_radius = target.radius + env.config.pusher_half_depth + 0.02
        self.lateral_aim = noise * rng.uniform(-0.005, 0.005)
        self.push_force = 1.3 * target.friction * target.mass * 9.81
        self.push_dir = np.array([1.0, 0.0])
        self.face = self.push_dir  # desired paddle face normal
        self._planned_for = env.episode_id

    # -- desired tip velocity ------------------------------------------------------------------
    def _toward(self, target: np.ndarray, pos: np.ndarray, speed: float) -> np.ndarray:
        v = self.KP_TO_VEL * (target - pos)
        n = float(np.linalg.norm(v))
        return v * (speed / n) if n > speed else v

    def _scene(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """The tip (x, y, z), the target's centre (x, y), its offset to the goal (x, y) and that distance."""
        env = self.env
        tip = env.tip_position()
        obj = env.object_position("target")[:2]
        to_goal = env.goal_position()[:2] - obj
        return tip, obj, to_goal, float(np.linalg.norm(to_goal))

    def _push(
        self, tip: np.ndarray, rel: np.ndarray, d: np.ndarray, dist: float, behind: float, floor: float
    ) -> np.ndarray:
        """Push along ``d`` and steer back onto the line: the forward speed tapers off near the goal (to no
        less than ``floor`` of full speed) and as the tip leaves the line behind the target."""
        normal = np.array([-d[1], d[0]])
        lateral = float(rel @ normal) - self.lateral_aim
        taper = float(np.clip((dist - self.STOP_DIST) / 0.04, floor, 1.0))
        taper *= float(np.clip((behind - self.CIRCLE_BELOW) / self.ALIGN_BAND, 0.0, 1.0))
        v_xy = self.push_speed * taper * d - self.LAT_GAIN * lateral * normal
        return np.array([*v_xy, self.KP_TO_VEL * (PUSH_Z - tip[2])])

    def _desired_velocity(self) -> np.ndarray:
        tip, obj, to_goal, dist = self._scene()
        if (dist > self.RESUME_DIST or self.phase not in ("hold", "push")) and dist > 1e-6:
            self.push_dir = to_goal / dist  # frozen close to the goal, where it would swing wildly
        d = self.push_dir
        self.face = d
        normal = np.array([-d[1], d[0]])
        rel = tip[:2] - obj
        behind = -float(rel @ d) / max(float(np.linalg.norm(rel)), 1e-6)  # cos of the tip's angle off line
        pre = obj - self.standoff * d + self.lateral_aim * normal

        if self.phase == "approach":
            if np.linalg.norm(tip[:2] - pre) < 0.015:
                self.phase = "descend"
            z = self.safe_z if np.linalg.norm(tip[:2] - pre) > 0.03 else PUSH_Z
            return self._toward(np.array([*pre, z]), tip, self.travel_speed)
        if self.phase == "descend":
            if tip[2] < PUSH_Z + 0.008:
                self.phase = "push"
            else:
                return self._toward(np.array([*pre, PUSH_Z]), tip, self.travel_speed)
        if self.phase == "hold":
            if dist > self.RESUME_DIST:
                self.phase = "push"
            else:  # back off a little behind the object and keep still
                return self._toward(np.array([*(obj - (self.standoff + 0.01) * d), PUSH_Z]), tip, 0.1)
        if self.phase == "circle":
            if behind > 0.97 and abs(np.linalg.norm(rel) - self.circle_radius) < 0.015:
                self.phase = "push"
            else:
                return self._circle(tip, obj, d, rel)
        # push
        if dist < self.STOP_DIST:
            self.phase = "hold"
            return self._desired_velocity()
        if behind < self.CIRCLE_BELOW:
            self.phase = "circle"
            return self._circle(tip, obj, d, rel)
        return self._push(tip, rel, d, dist, behind, floor=0.25)

    def _circle(self, tip: np.ndarray, obj: np.ndarray, d: np.ndarray, rel: np.ndarray) -> np.ndarray:
        """Go around the target at table height, facing it on a circle clear of it, to the point behind it."""
        r = max(float(np.linalg.norm(rel)), 1e-6)
        radial = rel / r
        self.face = -radial
        tangent = np.array([-radial[1], radial[0]])  # counter-clockwise
        # Signed angle of the tip from the point behind the target (2-D cross and dot product with -d).
        ang = math.atan2(d[1] * radial[0] - d[0] * radial[1], -float(d @ radial))
        v = 4.0 * (self.circle_radius - r) * radial - np.sign(ang) * min(0.25, 0.6 * abs(ang)) * tangent
        return np.array([*v, self.KP_TO_VEL * (PUSH_Z - tip[2])])

    def _rotation_error(self) -> np.ndarray:
        """Rotation (world frame) to the paddle pose facing ``self.face``; the face is symmetric, so the
        nearer of the two yaws that square it is taken. A round tool only stays upright: any yaw will do."""
        xmat = self.env.data.site_xmat[self.env.tip_site].reshape(3, 3)
        if self.env.config.pusher == "round":
            err = upright_error(xmat)
        else:
            current = tool_yaw(xmat)
            wanted = math.atan2(self.face[1], self.face[0])
            err = upright_error(xmat, current + (wanted - current + math.pi / 2) % math.pi - math.pi / 2)
        n = float(np.linalg.norm(err))
        return err * (self.MAX_ROT_ERROR / n) if n > self.MAX_ROT_ERROR else err

    # -- torques ----------------------------------------------------------------------------------
    def __call__(self, obs: Observation) -> np.ndarray:
        env = self.env
        if self._planned_for != env.episode_id:
            self._plan()
        v_des = self._desired_velocity()
        if env.family.action_kind == "ee_twist":  # what the tip should do; the env's controller tracks it
            twist = np.concatenate([v_des, self.TWIST_TURN_GAIN * self._rotation_error()])
            twist += self.noise * self.rng.normal(0.0, env.config.expert_twist_noise, size=6)
            return env.family.clip_action(twist).astype(np.float32)
        jac = site_jacobian(env.model, env.data, env.tip_site, env.arm_dofs)
        twist = jac @ env.data.qvel[env.arm_dofs]
        acc = np.concatenate([self.KV * (v_des - twist[:3]), self.KR * self._rotation_error() - self.KW * twist[3:]])
        tau = resolved_acceleration_torques(env, jac, acc)
        if self.phase == "push" and env.pusher_touches("target"):
            tau += jac[:3].T @ np.array([*(self.push_force * self.push_dir), 0.0])
        action = tau / GEAR + self.noise * self.rng.normal(0.0, env.config.expert_action_noise, size=7)
        return saturate(action).astype(np.float32)


class StatelessPushingExpert(PushingExpert):
    """The scripted pusher with no memory within an episode: its mode is a function of the scene.

    ``PushingExpert`` switches phase on events (reached the pre-push point, fell off the line, reached the
    goal) and keeps it until another event, and it freezes the push direction near the goal; so its
    label for a state depends on how the arm got there. Cloning averages such labels, and DAgger, which
    asks the expert about states the *policy* reached, collects contradictory ones (docs/results.md,
    "a stateless expert": 17.5% after a DAgger round with the phased expert, 80% with this one). Here
    every step decides afresh from the tip, target and goal:

    - target within ``STOP_DIST`` of the goal: hold a little behind it;
    - tip at pushing height beside the target, off the line behind it: circle round it;
    - tip at pushing height behind it, within reach: push (forward speed tapering to zero at the goal, so
      nothing needs to remember that it stopped);
    - anywhere else: approach the pre-push point over the objects and descend onto it.

    Per-demo parameters (speeds, heights, stand-off, aim) are still drawn once an episode, as for the
    phased expert: they vary demos, and a DAgger query uses a noise-free expert. ``phase`` is kept only
    as a record of the mode just chosen (the torque path's push force reads it), never as an input.
    """

    LOW = 0.02  # m above pushing height that still counts as at pushing height
    REACH = 0.03  # m beyond the stand-off (push) or circle radius (circle) that still counts as at the target

    def _desired_velocity(self) -> np.ndarray:
        tip, obj, to_goal, dist = self._scene()
        rel = tip[:2] - obj
        r = max(float(np.linalg.norm(rel)), 1e-6)
        # Toward the goal; at the goal, where that direction is undefined, along the tip's line to the target.
        d = to_goal / dist if dist > self.STOP_DIST else -rel / r
        self.push_dir = self.face = d
        normal = np.array([-d[1], d[0]])
        behind = -float(rel @ d) / r  # cos of the tip's angle off the line behind the target
        low = tip[2] < PUSH_Z + self.LOW
        if dist <= self.STOP_DIST:
            self.phase = "hold"
            return self._toward(np.array([*(obj - (self.standoff + 0.01) * d), PUSH_Z]), tip, 0.1)
        if low and behind < self.CIRCLE_BELOW and r < self.circle_radius + self.REACH:
            self.phase = "circle"
            return self._circle(tip, obj, d, rel)
        if low and behind >= self.CIRCLE_BELOW and r < self.standoff + self.REACH:
            self.phase = "push"
            return self._push(tip, rel, d, dist, behind, floor=0.0)
        self.phase = "approach"
        pre = obj - self.standoff * d + self.lateral_aim * normal
        z = self.safe_z if np.linalg.norm(tip[:2] - pre) > 0.03 else PUSH_Z
        return self._toward(np.array([*pre, z]), tip, self.travel_speed)


def resolved_acceleration_torques(env: PushingEnv, jac: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Joint torques (N m) giving the tip the task-space acceleration ``acc`` (linear, angular), with the
    redundant elbow held near the start posture in the null space and gravity and Coriolis compensated:
    operational-space control through the arm's mass matrix (``jac`` = the tip's 6x7 Jacobian)."""
    m, d, dofs = env.model, env.data, env.arm_dofs
    qd = d.qvel[dofs]
    qdd = dls_solve(jac, acc, damping=0.05)
    null = np.eye(7) - dls_solve(jac, np.eye(6), damping=0.05) @ jac
    qdd += null @ (KQ * (HOME_QPOS - d.qpos[env.arm_qadr]) - KQD * qd)
    full_m = np.zeros((m.nv, m.nv))
    mujoco.mj_fullM(m, d, full_m)
    return full_m[np.ix_(dofs, dofs)] @ qdd + d.qfrc_bias[dofs] - d.qfrc_passive[dofs]


def saturate(action: np.ndarray) -> np.ndarray:
    """Scale a motor command into [-1, 1], keeping the direction of the torque vector when one saturates."""
    peak = float(np.max(np.abs(action)))
    return action / peak if peak > 1.0 else action


# --------------------------------------------------------------------------------------------- family


PRIVILEGED_STATE_NAMES = ("target_x", "target_y", "goal_x", "goal_y")  # PushingConfig.privileged_state
JOINT_VELOCITY_ENTRIES = slice(7, 14)  # of robot_state(): left out without PushingConfig.state_joint_velocities


class PushingFamily(TaskFamily):
    """Task = (target object, distractor object), both from one split of the catalogue."""

    name = "pushing"
    action_kind = "joint_effort"
    action_dim = 7
    action_limits = np.ones(7)  # set per config in __init__ (twist limits under ee_twist)
    state_names = (
        *(f"q_{n}" for n in ARM_JOINT_NAMES),
        *(f"qd_{n}" for n in ARM_JOINT_NAMES),
        "ee_x",
        "ee_y",
        "ee_z",
    )

    def __init__(self, config: PushingConfig | None = None) -> None:
        self.config = config or PushingConfig()
        c = self.config
        self.action_kind = c.action_space  # type: ignore[assignment]
        self.action_dim = 7 if c.action_space == "joint_effort" else 6
        lin, ang = c.twist_limits
        twist = c.action_space == "ee_twist"
        self.action_limits = np.array([lin, lin, lin, ang, ang, ang]) if twist else np.ones(7)
        self.action_meaning = "numbers (tool twist)" if twist else "joint torques in [-1, 1]"
        names = PushingFamily.state_names
        if not c.state_joint_velocities:
            names = tuple(np.delete(np.asarray(names), JOINT_VELOCITY_ENTRIES).tolist())
        self.state_names = (*names, *(PRIVILEGED_STATE_NAMES if c.privileged_state else ()))
        self.catalogue: PushCatalogue = push_catalogue(c.n_objects, c.n_val_objects, c.n_test_objects)
        self.control_rate_hz = c.control_rate_hz
        self.episode_steps = c.episode_steps
        self.horizon = c.horizon
        self.camera_every = c.camera_every
        self.camera_size = (c.image_width, c.image_height)
        self.image_size = (c.image_width, c.image_height)

    def objects(self, split: str) -> tuple[str, ...]:
        return self.catalogue.split[check_split(split)]

    @lru_cache(maxsize=3)  # noqa: B019 - one family object lives for the whole process
    def tasks(self, split: str) -> list[Task]:
        """Objects of the split take turns as the target (in a seeded order), each time with a different
        distractor: targets are spread evenly and no (target, distractor) pair repeats until all are used."""
        check_split(split)
        index = SPLITS.index(split)
        rng = np.random.default_rng([self.config.task_seed, index])
        objects = self.objects(split)
        targets = [objects[i] for i in rng.permutation(len(objects))]
        distractors = {}
        for t in targets:
            others = [o for o in objects if o != t]
            distractors[t] = [others[i] for i in rng.permutation(len(others))]
        out = []
        for i in range(self.config.tasks_per_split[index]):
            target = targets[i % len(targets)]
            distractor = distractors[target][(i // len(targets)) % len(distractors[target])]
            out.append(self._task(split, i, target=target, distractor=distractor))
        return out

    def _task(self, split: str, index: int | str, **roles: str) -> Task:
        task_id = f"{self.name}/{split}/{index}"
        return Task(family=self.name, task_id=task_id, split=split, objects=dict(roles))

    def make_task(self, split: str, **roles: str) -> Task:
        self._check_roles(split, roles)
        return self._task(split, f"{roles['target']}-{roles['distractor']}", **roles)

    def _check_roles(self, split: str, roles: dict[str, str]) -> None:
        check_split(split)
        if set(roles) != set(ROLES):
            raise TaskError(f"pushing task needs roles {sorted(ROLES)}, got {sorted(roles)}")
        for role, oid in roles.items():
            if oid not in self.objects(split):
                raise not_in_split(oid, role, split, self.catalogue.split_of(oid))
        if roles["target"] == roles["distractor"]:
            raise TaskError("target and distractor must be different objects")

    def make_env(self, task: Task, trial_seed: int, render: bool = True) -> PushingEnv:
        if task.family != self.name:
            raise TaskError(f"task {task.task_id!r} belongs to family {task.family!r}, not {self.name!r}")
        self._check_roles(task.split, dict(task.objects))  # a hand-made Task must respect the split too
        if not isinstance(trial_seed, int | np.integer) or trial_seed < 0:
            raise TaskError(f"trial_seed must be a non-negative integer, got {trial_seed!r}")
        return PushingEnv(self, task, int(trial_seed), render)

    def make_expert(self, env: Env, seed: int, noise: float = 1.0) -> Expert:
        if not isinstance(env, PushingEnv):
            raise TypeError("the pushing expert needs a PushingEnv")
        expert = StatelessPushingExpert if self.config.expert == "stateless" else PushingExpert
        return expert(env, seed, noise)

    def demo_target(self, ee_poses: np.ndarray) -> np.ndarray:
        """Where the paddle first comes down to pushing height: the pre-push point behind the target.

        The default (where the tip ends) would be next to the red goal, which the scene shows without
        any demo, so a head regressing it never needs the demonstration (docs/results.md, "Pushing").
        The pre-push point lies a few cm behind the demonstrated object on the goal line: only the demo
        says which of the two objects that is. Falls back to the final tip position if the tip never
        came down (a demo that did not push).
        """
        low = np.flatnonzero(ee_poses[:, 2] < PUSH_Z + PUSH_HEIGHT_BAND)
        return np.asarray(ee_poses[low[0] if len(low) else -1, :2], dtype=np.float32)

    def preprocess(self, camera_image: np.ndarray) -> np.ndarray:
        """The camera already renders at the policy resolution (125x125 in the paper): check and pass on."""
        c = self.config
        if camera_image.shape != (c.image_height, c.image_width, 3):
            raise ValueError(
                f"camera image has shape {camera_image.shape}, expected {(c.image_height, c.image_width, 3)}"
            )
        return camera_image
