"""The placing family of the seed paper (section 6.3, appendix A.3), on a simulated PR2 right arm.

The arm holds an item above a table with three containers; the task is to put the item into the
*target* container, the two others are distractors. At the end of the horizon the gripper opens (the
paper scripts this too) and the trial succeeds when the item comes to rest in or on the target.

Actions are end-effector twists (linear m/s, angular rad/s, base frame), turned into joint velocities by
damped least squares, like the PR2 bridge does on the real arm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import mujoco
import numpy as np

from mil_sim.core import (
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
from mil_sim.kinematics import dls_solve, orientation_error, scale_to_limits, site_jacobian
from mil_sim.mjcf_util import LazyRenderer, look_at_xyaxes, rgba_str
from mil_sim.placing_objects import Catalogue, ContainerSpec, HeldSpec, catalogue
from mil_sim.pr2_arm import (
    ARM_JOINT_NAMES,
    ARM_VELOCITY_LIMITS,
    GRIPPER_JOINT_NAME,
    GRIPPER_MAX_OPENING,
    arm_joint_limits,
    arm_mjcf,
    gripper_equality_xml,
)

TABLE_Z = 0.60  # table top height (m)
# Container centres are drawn inside this box (base frame), all reachable with the tool pointing down.
WORKSPACE_X = (0.45, 0.68)
WORKSPACE_Y = (-0.47, 0.07)
MIN_CONTAINER_GAP = 0.03  # free space between container walls
# Start pose of the tool frame (pointing down) and the joint configuration that reaches it.
HOME_TOOL_POS = np.array([0.45, -0.20, 0.95])
HOME_QPOS = np.array([-0.632, -0.1751, -1.1351, -1.7624, -1.2975, -1.9549, -1.9189])
TOOL_DOWN = np.column_stack([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # tool x axis -> world -z
MAX_LINEAR_SPEED = 0.25  # m/s, also the bridge's default clamp
MAX_ANGULAR_SPEED = 0.6  # rad/s
PHYSICS_DT = 0.002


@dataclass
class PlacingConfig:
    """Everything that shapes the placing family; defaults follow the seed paper where it says."""

    camera_width: int = 320  # the PR2 head camera stream of appendix A.3
    camera_height: int = 240
    downsample: int = 2  # appendix A.3: downsample by 2 ...
    image_width: int = 100  # ... and crop to 100x90
    image_height: int = 90
    crop_x: int | None = None  # left edge of the crop in the downsampled image (None: centred)
    crop_y: int | None = None
    control_rate_hz: float = 20.0  # rate of raw teleop-like streams and of env.step
    episode_seconds: float = 6.0
    horizon: int = 30  # T after subsampling (appendix A.3)
    camera_every: int = 2  # camera at 10 Hz
    settle_seconds: float = 1.0  # after opening the gripper, before scoring
    tasks_per_split: tuple[int, int, int] = (400, 40, 100)  # train, val, test
    n_containers: int = 130
    n_held: int = 40
    task_seed: int = 7

    def __post_init__(self) -> None:
        for name in (
            "camera_width",
            "camera_height",
            "downsample",
            "image_width",
            "image_height",
            "control_rate_hz",
            "episode_seconds",
            "horizon",
            "camera_every",
        ):
            check_positive(name, getattr(self, name))
        w, h = self.camera_width // self.downsample, self.camera_height // self.downsample
        if self.image_width > w or self.image_height > h:
            raise TaskError(
                f"image {self.image_width}x{self.image_height} does not fit in the downsampled camera "
                f"image {w}x{h} (camera {self.camera_width}x{self.camera_height} / {self.downsample})"
            )
        if self.episode_steps < self.horizon:
            raise TaskError(f"episode has {self.episode_steps} control steps, fewer than horizon {self.horizon}")

    @property
    def episode_steps(self) -> int:
        return round(self.episode_seconds * self.control_rate_hz)

    def crop_origin(self) -> tuple[int, int]:
        w, h = self.camera_width // self.downsample, self.camera_height // self.downsample
        x0 = (w - self.image_width) // 2 if self.crop_x is None else self.crop_x
        y0 = (h - self.image_height) // 2 if self.crop_y is None else self.crop_y
        if not (0 <= x0 <= w - self.image_width and 0 <= y0 <= h - self.image_height):
            raise TaskError(
                f"crop origin ({x0}, {y0}) puts the {self.image_width}x{self.image_height} crop outside {w}x{h}"
            )
        return x0, y0


# ---------------------------------------------------------------------------------------------- scene


HEAD_CAMERA_POS = np.array([-0.12, -0.2, 1.7])  # PR2 head (head_mount_kinect) above the torso
HEAD_CAMERA_TARGET = np.array([0.58, -0.22, TABLE_Z])


def _container_assets(c: ContainerSpec) -> str:
    if c.texture == "none":
        return f'<material name="mat_{c.object_id}" rgba="{rgba_str(c.rgba)}"/>'
    builtin = {"checker": "checker", "gradient": "gradient", "stripes": "checker"}[c.texture]
    extra = ' mark="edge" markrgb="1 1 1"' if c.texture == "stripes" else ""
    return (
        f'<texture name="tex_{c.object_id}" type="cube" builtin="{builtin}" width="32" height="32" '
        f'rgb1="{rgba_str(c.rgba[:3])}" rgb2="{rgba_str(c.rgba2[:3])}"{extra}/>'
        f'<material name="mat_{c.object_id}" texture="tex_{c.object_id}" texrepeat="3 3"/>'
    )


def _container_body(c: ContainerSpec, role: str) -> str:
    """Static body: base disc plus a ring of wall boxes. Its position is set per trial."""
    geoms = [
        f'<geom name="{role}_base" type="cylinder" size="{c.radius:.4f} 0.004" pos="0 0 0.004" '
        f'material="mat_{c.object_id}"/>'
    ]
    seg_half = math.pi * c.radius / c.segments * 1.08
    r_mid = c.radius - c.wall / 2
    for k in range(c.segments):
        a = 2 * math.pi * k / c.segments
        geoms.append(
            f'<geom type="box" size="{c.wall / 2:.4f} {seg_half:.4f} {c.height / 2:.4f}" '
            f'pos="{r_mid * math.cos(a):.4f} {r_mid * math.sin(a):.4f} {c.height / 2:.4f}" '
            f'euler="0 0 {a:.4f}" material="mat_{c.object_id}"/>'
        )
    return f'<body name="{role}" pos="0.55 0 {TABLE_Z}">{"".join(geoms)}</body>'


def _held_body(h: HeldSpec) -> str:
    size = " ".join(f"{s:.4f}" for s in h.size)
    return (
        f'<body name="held" pos="{HOME_TOOL_POS[0]} {HOME_TOOL_POS[1]} {HOME_TOOL_POS[2]}">'
        '<freejoint name="held_free"/>'
        f'<geom name="held_geom" type="{h.shape}" size="{size}" rgba="{rgba_str(h.rgba)}" density="600" '
        f'friction="1 0.01 0.001"/></body>'
    )


def scene_xml(held: HeldSpec, containers: dict[str, ContainerSpec], config: PlacingConfig) -> str:
    """MJCF of the whole scene for one task: arm, table, three containers, held item, head camera."""
    assets = "".join(_container_assets(c) for c in containers.values())
    bodies = "".join(_container_body(c, role) for role, c in containers.items())
    xyaxes = look_at_xyaxes(HEAD_CAMERA_POS, HEAD_CAMERA_TARGET)
    pos = " ".join(f"{v:.4f}" for v in HEAD_CAMERA_POS)
    return f"""
<mujoco model="mil_placing">
  <compiler angle="radian"/>
  <option timestep="{PHYSICS_DT}" gravity="0 0 -9.81" integrator="implicitfast"/>
  <visual><global offwidth="{max(640, config.camera_width)}" offheight="{max(480, config.camera_height)}"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.5 0.5 0.5"/><quality shadowsize="1024"/></visual>
  <asset>
    <texture name="floor_tex" type="2d" builtin="checker" width="64" height="64"
             rgb1="0.42 0.42 0.45" rgb2="0.36 0.36 0.39"/>
    <material name="floor_mat" texture="floor_tex" texrepeat="6 6"/>
    <texture name="wood" type="cube" builtin="flat" width="16" height="16" rgb1="0.66 0.52 0.36"
             mark="random" markrgb="0.6 0.46 0.3" random="0.3"/>
    <material name="table_mat" texture="wood"/>
    {assets}
  </asset>
  <worldbody>
    <light pos="0.6 -0.2 2.2" dir="0 0 -1" diffuse="0.6 0.6 0.6" castshadow="true"/>
    <geom name="floor" type="plane" size="3 3 0.1" material="floor_mat"/>
    <geom name="table" type="box" pos="0.62 -0.2 {TABLE_Z - 0.02}" size="0.32 0.45 0.02" material="table_mat"/>
    <camera name="head_camera" pos="{pos}" xyaxes="{xyaxes}" fovy="45"/>
    {arm_mjcf()}
    {bodies}
    {_held_body(held)}
  </worldbody>
  <equality>
    {gripper_equality_xml()}
    <weld name="grasp" body1="r_gripper_palm_link" body2="held" solref="0.004 1"/>
  </equality>
</mujoco>"""


# ------------------------------------------------------------------------------------------------ env


def _sample_layout(rng: np.random.Generator, radii: list[float]) -> list[np.ndarray]:
    """Non-overlapping container centres inside the workspace (rejection sampling, fixed by the seed)."""
    for _ in range(10_000):
        pts = [
            np.array([rng.uniform(WORKSPACE_X[0], WORKSPACE_X[1]), rng.uniform(WORKSPACE_Y[0], WORKSPACE_Y[1])])
            for _ in radii
        ]
        if all(
            np.linalg.norm(pts[i] - pts[j]) > radii[i] + radii[j] + MIN_CONTAINER_GAP
            for i in range(len(pts))
            for j in range(i)
        ):
            return pts
    raise RuntimeError("could not lay out the containers; the workspace is too small for them")


class PlacingEnv(Env):
    """One placing trial. The arm is moved kinematically along the commanded joint velocities."""

    def __init__(self, family: PlacingFamily, task: Task, trial_seed: int, render: bool) -> None:
        self.family = family
        self.config = family.config
        self.task = task
        self.trial_seed = trial_seed
        self._render_obs = render
        cat = family.catalogue
        self.held_spec = cat.held[task.objects["held"]]
        self.container_specs = {
            role: cat.containers[task.objects[role]] for role in ("target", "distractor_0", "distractor_1")
        }
        self.model = mujoco.MjModel.from_xml_string(scene_xml(self.held_spec, self.container_specs, self.config))
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._arm_qadr = np.array([m.joint(n).qposadr[0] for n in ARM_JOINT_NAMES])
        self._arm_dof = np.array([m.joint(n).dofadr[0] for n in ARM_JOINT_NAMES])
        self._grip_qadr = m.joint(GRIPPER_JOINT_NAME).qposadr[0]
        self._grip2_qadr = m.joint("r_gripper_r_finger_joint").qposadr[0]
        self._held_qadr = m.joint("held_free").qposadr[0]
        self._held_dof = m.joint("held_free").dofadr[0]
        self._tool = m.site("r_gripper_tool_frame").id
        self._palm = m.body("r_gripper_palm_link").id
        self._held_body = m.body("held").id
        self._grasp = m.equality("grasp").id
        self._container_ids = {role: m.body(role).id for role in self.container_specs}
        self._limits = arm_joint_limits()
        self._substeps = max(1, round(1.0 / (self.config.control_rate_hz * PHYSICS_DT)))
        self._camera = LazyRenderer(self.model, self.config.camera_width, self.config.camera_height, "head_camera")
        self._q = HOME_QPOS.copy()
        self._qdot = np.zeros(7)
        self._open = False
        self._t = 0.0
        self.episode_id = 0  # bumped by reset(), so experts re-plan for a new episode

    # -- trial set-up ---------------------------------------------------------------------------
    def reset(self) -> Observation:
        rng = np.random.default_rng([self.trial_seed, 9173])
        roles = list(self.container_specs)
        centres = _sample_layout(rng, [self.container_specs[r].radius for r in roles])
        for role, c in zip(roles, centres, strict=True):
            self.model.body_pos[self._container_ids[role]] = [c[0], c[1], TABLE_Z]
        mujoco.mj_resetData(self.model, self.data)
        self._q = self._limits.clip(HOME_QPOS + rng.normal(0.0, 0.04, size=7))
        self._qdot = np.zeros(7)
        self._open = False
        self._t = 0.0
        self.episode_id += 1
        self.data.qpos[self._arm_qadr] = self._q
        self.data.qpos[self._grip_qadr] = self.data.qpos[self._grip2_qadr] = self._finger_gap()
        mujoco.mj_kinematics(self.model, self.data)
        self._attach_held()
        mujoco.mj_forward(self.model, self.data)
        return self._observe()

    def _finger_gap(self) -> float:
        """Each finger's slide: touching the item while closed, fully open after release."""
        if self._open:
            return GRIPPER_MAX_OPENING / 2
        return min(GRIPPER_MAX_OPENING / 2, max(self.held_spec.size[:2]) + 0.003)

    def _attach_held(self) -> None:
        """Put the item at the tool frame and weld it to the palm with exactly that relative pose."""
        tool_pos = self.data.site_xpos[self._tool].copy()
        tool_quat = np.zeros(4)
        mujoco.mju_mat2Quat(tool_quat, self.data.site_xmat[self._tool])
        self.data.qpos[self._held_qadr : self._held_qadr + 3] = tool_pos
        self.data.qpos[self._held_qadr + 3 : self._held_qadr + 7] = tool_quat
        # Weld data: anchor(3), pose of body2 in body1's frame (pos 3, quat 4), torque scale.
        palm_pos = self.data.xpos[self._palm]
        palm_mat = self.data.xmat[self._palm].reshape(3, 3)
        rel_pos = palm_mat.T @ (tool_pos - palm_pos)
        palm_quat = np.zeros(4)
        mujoco.mju_mat2Quat(palm_quat, self.data.xmat[self._palm])
        inv = np.zeros(4)
        mujoco.mju_negQuat(inv, palm_quat)
        rel_quat = np.zeros(4)
        mujoco.mju_mulQuat(rel_quat, inv, tool_quat)
        self.model.eq_data[self._grasp, 0:3] = 0.0
        self.model.eq_data[self._grasp, 3:6] = rel_pos
        self.model.eq_data[self._grasp, 6:10] = rel_quat
        self.model.eq_data[self._grasp, 10] = 1.0
        self.data.eq_active[self._grasp] = 1

    # -- stepping -------------------------------------------------------------------------------
    def step(self, action: np.ndarray) -> Observation:
        twist = self.family.clip_action(np.asarray(action, dtype=np.float64))
        jac = site_jacobian(self.model, self.data, self._tool, self._arm_dof)
        qdot = scale_to_limits(dls_solve(jac, twist, damping=0.05), ARM_VELOCITY_LIMITS)
        self.apply_joint_velocities(qdot, 1.0 / self.config.control_rate_hz)
        return self._observe()

    def apply_joint_velocities(self, qdot: np.ndarray, duration: float) -> None:
        """Move the arm along ``qdot`` (clamped at joint limits) for ``duration`` seconds of physics."""
        n = max(1, round(duration / PHYSICS_DT))
        d = self.data
        for _ in range(n):
            q_next = self._limits.clip(self._q + qdot * PHYSICS_DT)
            self._qdot = (q_next - self._q) / PHYSICS_DT
            d.qvel[self._arm_dof] = self._qdot
            self._q = q_next
            mujoco.mj_step(self.model, d)
            d.qpos[self._arm_qadr] = self._q
            d.qpos[self._grip_qadr] = d.qpos[self._grip2_qadr] = self._finger_gap()
        mujoco.mj_forward(self.model, d)
        self._t += n * PHYSICS_DT

    def set_gripper(self, open_: bool) -> None:
        """Open releases the item (the weld turns off); closing again does not re-grasp it."""
        if open_ and not self._open:
            self._open = True
            self.data.eq_active[self._grasp] = 0

    def end_episode(self) -> None:
        self.set_gripper(True)
        self.apply_joint_velocities(np.zeros(7), self.config.settle_seconds)

    # -- scoring --------------------------------------------------------------------------------
    def held_position(self) -> np.ndarray:
        return self.data.xpos[self._held_body].copy()

    def container_position(self, role: str) -> np.ndarray:
        return self.data.xpos[self._container_ids[role]].copy()

    def item_distance(self, role: str) -> float:
        """The item's centre from a container's centre, in the table plane (m)."""
        return float(np.linalg.norm(self.held_position()[:2] - self.container_position(role)[:2]))

    def item_in_container(self, role: str) -> bool:
        """The item's centre is inside the container's footprint and no higher than resting on its rim."""
        c = self.container_specs[role]
        inside = self.item_distance(role) <= (c.inner_radius if c.kind != "plate" else c.radius)
        low_enough = TABLE_Z < self.held_position()[2] <= TABLE_Z + c.height + 2.2 * self.held_spec.half_extent + 0.01
        return bool(inside and low_enough)

    def success(self) -> bool:
        """Paper's criterion: after the gripper opened, the item landed in or on the target container."""
        return self._open and self.item_in_container("target")

    def target_distance(self) -> float:
        """Where the item came to rest, from the target container's centre (in the table plane)."""
        return self.item_distance("target")

    def landmarks(self) -> Landmarks:
        """The containers' centres; the held item is not a candidate."""
        return Landmarks(objects={r: self.container_position(r)[:2] for r in self.container_specs})

    def chosen_role(self) -> str:
        """The container nearest (in the table plane) to where the item came to rest."""
        return min(self.container_specs, key=self.item_distance)

    # -- observation ----------------------------------------------------------------------------
    def _observe(self) -> Observation:
        image = self.family.preprocess(self.render_camera()) if self._render_obs else np.zeros((0, 0, 3), np.uint8)
        return Observation(image=image, state=self.robot_state(), time=self._t)

    def robot_state(self) -> np.ndarray:
        """Joint angles (7), tool position (3), gripper open flag: the robot configuration input."""
        return np.concatenate([self._q, self.data.site_xpos[self._tool], [float(self._open)]]).astype(np.float32)

    def render_camera(self) -> np.ndarray:
        return self._camera.render(self.data)

    def ee_pose(self) -> np.ndarray:
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self._tool])
        return np.concatenate([self.data.site_xpos[self._tool], quat])

    def joint_names(self) -> tuple[str, ...]:
        return (*ARM_JOINT_NAMES, GRIPPER_JOINT_NAME)

    def joint_positions(self) -> np.ndarray:
        return np.concatenate([self._q, [2 * self.data.qpos[self._grip_qadr]]])

    def joint_velocities(self) -> np.ndarray:
        """The arm's actual joint velocities (limit-clamped), not MuJoCo's qvel, which gravity perturbs."""
        return np.concatenate([self._qdot, [0.0]])

    def gripper_is_open(self) -> bool:
        return self._open

    def close(self) -> None:
        self._camera.close()


# --------------------------------------------------------------------------------------------- expert


class PlacingExpert:
    """Scripted teleoperator: cruise over the target, descend, hold still; the gripper opens at the end.

    Uses privileged state (the target's position). Noise makes demos differ the way human demos do: a
    random via-point on the way, a per-demo speed, and per-step velocity jitter.
    """

    def __init__(self, env: PlacingEnv, seed: int, noise: float = 1.0) -> None:
        self.env = env
        self.rng = np.random.default_rng([seed, 4051])
        self.noise = noise
        self._planned_for: int | None = None

    def _plan(self) -> None:
        """Plan from the scene as it is at the first step (the env may be reset after construction)."""
        env, rng, noise = self.env, self.rng, self.noise
        target = env.container_specs["target"]
        centre = env.container_position("target")
        drop = TABLE_Z + target.height + env.held_spec.half_extent + 0.035
        self.release = np.array([centre[0], centre[1], drop])
        self.cruise_z = max(drop + 0.08, TABLE_Z + 0.22) + noise * rng.uniform(-0.02, 0.03)
        self.gain = 2.5 * (1.0 + noise * rng.uniform(-0.2, 0.2))
        self.speed = MAX_LINEAR_SPEED * (0.8 + noise * rng.uniform(-0.1, 0.15))
        start = env.data.site_xpos[env._tool].copy()
        mid = 0.5 * (start + self.release)
        self.via = np.array([*(mid[:2] + noise * rng.normal(0, 0.04, 2)), self.cruise_z])
        self.via_done = noise == 0.0
        self.aim_offset = noise * rng.normal(0.0, 0.004, 2)
        self._planned_for = env.episode_id

    def __call__(self, obs: Observation) -> np.ndarray:
        env = self.env
        if self._planned_for != env.episode_id:
            self._plan()
        pos = env.data.site_xpos[env._tool]
        release = self.release.copy()
        release[:2] += self.aim_offset
        if not self.via_done and np.linalg.norm(pos[:2] - self.via[:2]) < 0.05:
            self.via_done = True
        if not self.via_done:
            goal = self.via
        elif np.linalg.norm(pos[:2] - release[:2]) > 0.02:
            goal = np.array([release[0], release[1], self.cruise_z])
        else:
            goal = release
        v = self.gain * (goal - pos)
        speed = np.linalg.norm(v)
        if speed > self.speed:
            v *= self.speed / speed
        v += self.noise * self.rng.normal(0.0, 0.008, 3)
        w = 2.0 * orientation_error(env.data.site_xmat[env._tool], TOOL_DOWN)
        w += self.noise * self.rng.normal(0.0, 0.02, 3)
        return np.concatenate([v, w]).astype(np.float32)


# --------------------------------------------------------------------------------------------- family


class PlacingFamily(TaskFamily):
    """Task = (held item, target container, two distractor containers), all from one split."""

    name = "placing"
    action_kind = "ee_twist"
    action_dim = 6
    state_names = (*(f"q_{n}" for n in ARM_JOINT_NAMES), "ee_x", "ee_y", "ee_z", "gripper_open")
    action_limits = np.array([MAX_LINEAR_SPEED] * 3 + [MAX_ANGULAR_SPEED] * 3)
    action_meaning = "numbers (twist)"

    def __init__(self, config: PlacingConfig | None = None) -> None:
        self.config = config or PlacingConfig()
        c = self.config
        self.catalogue: Catalogue = catalogue(c.n_containers, c.n_held)
        self.control_rate_hz = c.control_rate_hz
        self.episode_steps = c.episode_steps
        self.horizon = c.horizon
        self.camera_every = c.camera_every
        self.camera_size = (c.camera_width, c.camera_height)
        self.image_size = (c.image_width, c.image_height)
        self._crop = c.crop_origin()

    def objects(self, split: str) -> tuple[str, ...]:
        check_split(split)
        return self.catalogue.held_split[split] + self.catalogue.container_split[split]

    @lru_cache(maxsize=3)  # noqa: B019 - one family object lives for the whole process
    def tasks(self, split: str) -> list[Task]:
        check_split(split)
        n = self.config.tasks_per_split[("train", "val", "test").index(split)]
        rng = np.random.default_rng([self.config.task_seed, ("train", "val", "test").index(split)])
        held = self.catalogue.held_split[split]
        containers = self.catalogue.container_split[split]
        out = []
        for i in range(n):
            h = held[int(rng.integers(len(held)))]
            target, d0, d1 = (containers[k] for k in rng.choice(len(containers), size=3, replace=False))
            out.append(self._task(split, i, held=h, target=target, distractor_0=d0, distractor_1=d1))
        return out

    def _task(self, split: str, index: int | str, **roles: str) -> Task:
        return Task(family=self.name, task_id=f"{self.name}/{split}/{index}", split=split, objects=dict(roles))

    def make_task(self, split: str, **roles: str) -> Task:
        check_split(split)
        expected = {"held", "target", "distractor_0", "distractor_1"}
        if set(roles) != expected:
            raise TaskError(f"placing task needs roles {sorted(expected)}, got {sorted(roles)}")
        for role, oid in roles.items():
            pool = self.catalogue.held_split[split] if role == "held" else self.catalogue.container_split[split]
            if oid not in pool:
                where = [s for s in ("train", "val", "test") if oid in self.objects(s)]
                raise not_in_split(oid, role, split, where[0] if where else None)
        if len({roles["target"], roles["distractor_0"], roles["distractor_1"]}) != 3:
            raise TaskError("target and distractors must be three different containers")
        name = "-".join(roles[r] for r in ("held", "target", "distractor_0", "distractor_1"))
        return self._task(split, name, **roles)

    def make_env(self, task: Task, trial_seed: int, render: bool = True) -> PlacingEnv:
        if task.family != self.name:
            raise TaskError(f"task {task.task_id!r} belongs to family {task.family!r}, not {self.name!r}")
        return PlacingEnv(self, task, trial_seed, render)

    def make_expert(self, env: Env, seed: int, noise: float = 1.0) -> Expert:
        if not isinstance(env, PlacingEnv):
            raise TypeError("the placing expert needs a PlacingEnv")
        return PlacingExpert(env, seed, noise)

    def preprocess(self, camera_image: np.ndarray) -> np.ndarray:
        c = self.config
        if camera_image.shape != (c.camera_height, c.camera_width, 3):
            raise ValueError(
                f"camera image has shape {camera_image.shape}, expected {(c.camera_height, c.camera_width, 3)}"
            )
        small = cv2.resize(
            camera_image,
            (c.camera_width // c.downsample, c.camera_height // c.downsample),
            interpolation=cv2.INTER_AREA,
        )
        x0, y0 = self._crop
        return np.ascontiguousarray(small[y0 : y0 + c.image_height, x0 : x0 + c.image_width])
