"""Simulated planar reaching (seed paper appendix A.1): a torque-driven 2-link arm reaches a coloured target.

A task is a target colour plus two distractor colours; the trial seed decides where the three discs lie
and how the arm starts. The policy sees a top-down camera image (80x64 RGB by default) and the arm state
(joint angles, fingertip position) and commands two joint torques. Success is the paper's: the fingertip
comes within 0.05 m of the target in any of the last 10 control steps.

The state has no joint velocities, and the expert needs none (a proportional controller; the joints'
damping settles the arm). With velocities in the state, behaviour cloning has a shortcut: mid-reach the
velocity already points at the target, so a policy that just continues the current motion imitates
most frames well without knowing which disc is the target. Measured here, MIL meta-training then
settled on exactly that demo-ignoring policy (its loss was the same after adapting on another task's
demo), which never picks a direction at the start of a trial. Without velocities every moving frame
depends on where the target is, which is what the demonstration has to convey.

Colours come from a fixed, seeded catalogue that is split into train / val / test colours, so a
held-out task's target colour never appeared during meta-training. The scene is flat-lit on purpose: the
camera looks straight down along the headlight and the discs' top faces render at exactly their
catalogue RGB, which keeps colours (the only task cue) unambiguous at 80x64 pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from mil_sim.core import (
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
)
from mil_sim.mjcf_util import LazyRenderer

ROLES = ("target", "distractor_0", "distractor_1")
JOINT_NAMES = ("joint0", "joint1")
STATE_NAMES = ("joint0_pos", "joint1_pos", "fingertip_x", "fingertip_y")

# Scene colours. Catalogue colours keep a margin from these so a target never blends into the scene.
GROUND_RGB = (0.15, 0.15, 0.15)  # outside the arena (visible left and right of it in a 80x64 image)
ARENA_RGB = (0.5, 0.5, 0.5)
ARM_RGB = (0.92, 0.92, 0.92)
FINGERTIP_RGB = (0.75, 0.75, 0.75)
RESERVED_COLOR_MARGIN = 0.3  # min RGB distance of a catalogue colour to the scene colours
MIN_COLOR_DISTANCE = 0.16  # min RGB distance between two catalogue colours (120 fit easily)

ARM_Z = 0.03  # the arm moves above the discs, so it occludes them as it would on a table
DISC_HALF_HEIGHT = 0.002
LAYOUT_SALT = 0x5EAC4  # keeps layout streams apart from other seeded streams
LINK_RADIUS = 0.014  # ~3 px wide at 80x64: the arm stays visible to the policy


@dataclass
class ReachingConfig:
    """Everything that defines the reaching family; defaults follow paper A.1 where it says (80x64 image,
    3 discs, 0.05 m / last-10-steps success, 150 test tasks) and are our own choices elsewhere.

    The arm geometry leaves the whole target annulus reachable inside the 0.6 x 0.6 m arena; the
    dynamics (gear, damping, armature) are chosen so that the arm can cross the workspace in about a
    second while random torques mostly dither around the start pose.
    """

    image_size: tuple[int, int] = (80, 64)  # (width, height) rendered and seen by the policy
    control_rate_hz: float = 20.0
    episode_steps: int = 50
    physics_timestep: float = 0.005
    arena_size: float = 0.6  # m, side of the square arena, exactly the camera's vertical field of view
    link_lengths: tuple[float, float] = (0.12, 0.12)
    joint1_limit: float = 2.8  # rad, elbow range +-limit (keeps the forearm off the upper arm)
    gear: float = 0.5  # N m per unit of action
    damping: float = 0.1  # N m s / rad
    armature: float = 0.01  # kg m^2, dominates the light links' inertia: nearly decoupled joints
    target_radius_range: tuple[float, float] = (0.08, 0.21)  # m from the shoulder
    disc_radius: float = 0.025
    min_target_separation: float = 0.12  # > 2 * success_radius: reaching one disc never counts for another
    min_start_distance: float = 0.1  # the fingertip starts at least this far from the target
    success_radius: float = 0.05
    success_window: int = 10  # last control steps in which the fingertip must come within the radius
    n_colors: int = 120
    n_val_colors: int = 10
    n_test_colors: int = 30
    color_seed: int = 0
    split_seed: int = 1
    task_seed: int = 2
    train_tasks: int = 500
    val_tasks: int = 50
    test_tasks: int = 150
    expert_kp: float = 1.0  # action units per rad of joint error; with the joint damping: damping ratio ~0.7
    expert_max_action: float = 0.5  # the expert's torque limit: a reach takes about a second, not a few steps
    expert_noise_std: float = 0.1  # std of the Gaussian action noise at noise=1

    def __post_init__(self) -> None:
        for name in ("control_rate_hz", "episode_steps", "physics_timestep", "arena_size", "gear"):
            check_positive(name, getattr(self, name))
        for name in (
            "success_radius",
            "success_window",
            "disc_radius",
            "n_val_colors",
            "n_test_colors",
            "expert_max_action",
        ):
            check_positive(name, getattr(self, name))
        if len(self.image_size) != 2:
            raise TaskError(f"image_size must be (width, height), got {self.image_size!r}")
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))  # YAML gives lists
        check_positive("image width", self.image_size[0])
        check_positive("image height", self.image_size[1])
        for name in ("train_tasks", "val_tasks", "test_tasks"):
            check_positive(name, getattr(self, name))
        if self.substeps < 1 or not math.isclose(self.substeps * self.physics_timestep, self.control_period):
            raise TaskError(
                f"control period 1/{self.control_rate_hz} s must be a whole multiple of "
                f"physics_timestep {self.physics_timestep} s"
            )
        if self.n_colors - self.n_val_colors - self.n_test_colors < 3:
            raise TaskError(
                f"train split needs >= 3 colours (target + 2 distractors); n_colors={self.n_colors}, "
                f"n_val_colors={self.n_val_colors}, n_test_colors={self.n_test_colors}"
            )
        if self.n_val_colors + self.n_test_colors < 3:
            raise TaskError("val + test colours together must be >= 3 to build held-out tasks")
        lo, hi = self.target_radius_range
        if not 0 < lo < hi <= sum(self.link_lengths):
            raise TaskError(f"target_radius_range {self.target_radius_range} must lie within the arm's reach")

    @property
    def control_period(self) -> float:
        return 1.0 / self.control_rate_hz

    @property
    def substeps(self) -> int:
        """Physics steps per control step."""
        return round(self.control_period / self.physics_timestep)


# --------------------------------------------------------------------------------------------------
# Colour catalogue and tasks


def color_catalogue(n: int, seed: int) -> np.ndarray:
    """(n, 3) RGB in [0, 1]: seeded rejection sampling keeps colours apart from each other and the scene."""
    rng = np.random.default_rng(seed)
    reserved = np.array([GROUND_RGB, ARENA_RGB, ARM_RGB, FINGERTIP_RGB])
    colors = np.empty((n, 3))
    count = 0
    for _ in range(1000 * n):
        if count == n:
            break
        c = rng.uniform(0.0, 1.0, 3)
        if np.min(np.linalg.norm(reserved - c, axis=1)) < RESERVED_COLOR_MARGIN:
            continue
        if count and np.min(np.linalg.norm(colors[:count] - c, axis=1)) < MIN_COLOR_DISTANCE:
            continue
        colors[count] = c
        count += 1
    if count < n:
        raise TaskError(f"cannot fit {n} distinct colours (found {count}); lower n_colors")
    return colors


def color_id(index: int) -> str:
    return f"color_{index:03d}"


# --------------------------------------------------------------------------------------------------
# Arm kinematics and the expert's controller


def fingertip_xy(q: np.ndarray, links: tuple[float, float]) -> np.ndarray:
    """Planar forward kinematics of the fingertip (shoulder at the origin)."""
    l1, l2 = links
    return np.array(
        [l1 * math.cos(q[0]) + l2 * math.cos(q[0] + q[1]), l1 * math.sin(q[0]) + l2 * math.sin(q[0] + q[1])]
    )


def wrap_angle(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def inverse_kinematics(goal: np.ndarray, q: np.ndarray, links: tuple[float, float], q1_limit: float) -> np.ndarray:
    """Joint angles that put the fingertip on ``goal``, choosing the elbow branch nearest to ``q``.

    The shoulder angle is returned unwrapped relative to ``q[0]`` (the shoulder is continuous), so that
    ``result - q`` is the shortest joint-space move.
    """
    l1, l2 = links
    r2 = float(goal[0] ** 2 + goal[1] ** 2)
    c1 = np.clip((r2 - l1 * l1 - l2 * l2) / (2.0 * l1 * l2), -1.0, 1.0)
    elbow = min(math.acos(c1), q1_limit)
    best, best_cost = np.zeros(2), math.inf
    for q1 in (elbow, -elbow):
        q0 = math.atan2(goal[1], goal[0]) - math.atan2(l2 * math.sin(q1), l1 + l2 * math.cos(q1))
        q0 = q[0] + wrap_angle(q0 - q[0])
        cost = abs(q0 - q[0]) + abs(q1 - q[1])
        if cost < best_cost:
            best, best_cost = np.array([q0, q1]), cost
    return best


def reach_action(state: np.ndarray, goal: np.ndarray, cfg: ReachingConfig) -> np.ndarray:
    """Joint-space proportional control toward the IK solution for ``goal``; the paper's iLQG expert
    plays this role.

    With gravity-free planar dynamics, armature-dominated inertia and the joints' viscous damping, a
    saturated P controller per joint is a well-damped reach; no trajectory optimisation is needed, and
    the action depends only on what the policy sees (joint angles and the target), not on velocities.
    """
    q = state[0:2].astype(np.float64)
    q_goal = inverse_kinematics(goal, q, cfg.link_lengths, cfg.joint1_limit)
    return np.clip(cfg.expert_kp * (q_goal - q), -cfg.expert_max_action, cfg.expert_max_action)


# --------------------------------------------------------------------------------------------------
# Scene


@dataclass(frozen=True)
class Layout:
    """What a trial seed decides: disc positions (target, distractor_0, distractor_1) and arm start."""

    positions: np.ndarray  # (3, 2) xy in m, in ROLES order
    qpos: np.ndarray  # (2,) joint angles in rad


def sample_layout(trial_seed: int, cfg: ReachingConfig) -> Layout:
    """Non-overlapping discs inside the reachable annulus; an arm start away from the target."""
    rng = np.random.default_rng([LAYOUT_SALT, trial_seed])  # independent of an expert seeded alike
    lo, hi = cfg.target_radius_range
    positions: list[np.ndarray] = []
    for _ in range(10_000):  # rejection sampling; the cap only trips for an impossible config
        if len(positions) == len(ROLES):
            break
        r = math.sqrt(rng.uniform(lo * lo, hi * hi))  # uniform over the annulus' area
        a = rng.uniform(-math.pi, math.pi)
        p = np.array([r * math.cos(a), r * math.sin(a)])
        if all(np.linalg.norm(p - o) >= cfg.min_target_separation for o in positions):
            positions.append(p)
    else:
        raise TaskError(f"cannot place {len(ROLES)} discs {cfg.min_target_separation} m apart in the annulus")
    for _ in range(10_000):
        q = np.array([rng.uniform(-math.pi, math.pi), rng.uniform(-0.9, 0.9) * cfg.joint1_limit])
        if np.linalg.norm(fingertip_xy(q, cfg.link_lengths) - positions[0]) >= cfg.min_start_distance:
            return Layout(positions=np.array(positions), qpos=q)
    raise TaskError(f"cannot start the fingertip {cfg.min_start_distance} m away from the target")


def scene_mjcf(cfg: ReachingConfig, disc_rgbs: np.ndarray) -> str:
    """MJCF of the arena, the three discs (in ROLES order) and the arm, seen by an orthographic top camera.

    Contacts are disabled (the arm passes over the discs); gravity is off because the arm is planar.
    The headlight's ambient + diffuse sum to 1 and it shines along the camera axis, so upward faces
    render at exactly their RGB.
    """
    w, h = cfg.image_size
    l1, l2 = cfg.link_lengths
    half = cfg.arena_size / 2.0

    def rgba(c: tuple[float, float, float] | np.ndarray) -> str:
        return f"{c[0]:.4f} {c[1]:.4f} {c[2]:.4f} 1"

    discs = "\n".join(
        f'<body name="{role}" pos="0 0 0"><geom name="{role}_disc" type="cylinder" '
        f'size="{cfg.disc_radius} {DISC_HALF_HEIGHT}" pos="0 0 {0.004 + DISC_HALF_HEIGHT}" '
        f'rgba="{rgba(c)}"/></body>'
        for role, c in zip(ROLES, disc_rgbs, strict=True)
    )
    return f"""
<mujoco model="mil_reaching">
  <compiler angle="radian"/>
  <option timestep="{cfg.physics_timestep}" gravity="0 0 0" integrator="implicitfast">
    <flag contact="disable"/>
  </option>
  <visual>
    <global offwidth="{max(w, 640)}" offheight="{max(h, 480)}"/>
    <headlight ambient="0.4 0.4 0.4" diffuse="0.6 0.6 0.6" specular="0 0 0"/>
    <quality shadowsize="0"/>
  </visual>
  <default>
    <joint damping="{cfg.damping}" armature="{cfg.armature}"/>
    <geom contype="0" conaffinity="0"/>
  </default>
  <worldbody>
    <geom name="ground" type="plane" size="2 2 0.1" rgba="{rgba(GROUND_RGB)}"/>
    <geom name="arena" type="box" size="{half} {half} 0.001" pos="0 0 0.001" rgba="{rgba(ARENA_RGB)}"/>
    <camera name="top" pos="0 0 1" projection="orthographic" fovy="{cfg.arena_size}"/>
    {discs}
    <geom name="shoulder" type="cylinder" size="0.018 {ARM_Z / 2}" pos="0 0 {ARM_Z / 2}"
          rgba="{rgba(ARM_RGB)}"/>
    <body name="link0" pos="0 0 {ARM_Z}">
      <joint name="{JOINT_NAMES[0]}" type="hinge" axis="0 0 1" limited="false"/>
      <geom type="capsule" fromto="0 0 0 {l1} 0 0" size="{LINK_RADIUS}" rgba="{rgba(ARM_RGB)}"/>
      <body name="link1" pos="{l1} 0 0">
        <joint name="{JOINT_NAMES[1]}" type="hinge" axis="0 0 1" limited="true"
               range="{-cfg.joint1_limit} {cfg.joint1_limit}"/>
        <geom type="capsule" fromto="0 0 0 {l2} 0 0" size="{LINK_RADIUS}" rgba="{rgba(ARM_RGB)}"/>
        <geom name="fingertip_marker" type="sphere" size="0.018" pos="{l2} 0 0.005"
              rgba="{rgba(FINGERTIP_RGB)}"/>
        <site name="fingertip" pos="{l2} 0 0" size="0.005"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor joint="{JOINT_NAMES[0]}" gear="{cfg.gear}" ctrlrange="-1 1" ctrllimited="true"/>
    <motor joint="{JOINT_NAMES[1]}" gear="{cfg.gear}" ctrlrange="-1 1" ctrllimited="true"/>
  </actuator>
</mujoco>
"""


class ReachingEnv(Env):
    """One trial: the discs and the arm start where ``trial_seed`` puts them; 2 torques per step."""

    def __init__(self, family: ReachingFamily, task: Task, trial_seed: int, render: bool) -> None:
        self.family = family
        self.config = family.config
        self.task = task
        self.trial_seed = trial_seed
        self._render_obs = render  # policy images in observations (costs a render per step)
        rgbs = np.array([family.color_rgb(task.objects[role]) for role in ROLES])
        self.model = mujoco.MjModel.from_xml_string(scene_mjcf(self.config, rgbs))
        self.data = mujoco.MjData(self.model)
        self._disc_bodies = [self.model.body(role).id for role in ROLES]
        self._tip_site = self.model.site("fingertip").id
        self._link1 = self.model.body("link1").id
        self._camera = LazyRenderer(self.model, *self.config.image_size, "top")
        self._frame: np.ndarray | None = None  # camera image of the current state (render once per state)
        self._positions = np.zeros((len(ROLES), 2))
        self._distances: list[float] = []  # fingertip-to-target distance after each step

    # -- episode ------------------------------------------------------------------------------------

    def reset(self) -> Observation:
        layout = sample_layout(self.trial_seed, self.config)
        mujoco.mj_resetData(self.model, self.data)
        self._positions = layout.positions.copy()
        for body, xy in zip(self._disc_bodies, layout.positions, strict=True):
            self.model.body_pos[body] = (xy[0], xy[1], 0.0)
        self.data.qpos[:] = layout.qpos
        mujoco.mj_forward(self.model, self.data)
        self._distances = []
        self._frame = None
        return self._observe()

    def step(self, action: np.ndarray) -> Observation:
        self.data.ctrl[:] = self.family.clip_action(np.asarray(action, dtype=np.float64))
        mujoco.mj_step(self.model, self.data, nstep=self.config.substeps)
        mujoco.mj_kinematics(self.model, self.data)  # mj_step leaves poses one substep behind qpos
        self._distances.append(self.target_distance())
        self._frame = None
        return self._observe()

    def end_episode(self) -> None:
        """Nothing happens after a reach."""

    def success(self) -> bool:
        """Paper A.1: the fingertip within ``success_radius`` of the target in any of the last steps."""
        window = self._distances[-self.config.success_window :]
        return any(d < self.config.success_radius for d in window)

    def target_distance(self) -> float:
        """The fingertip from the target disc's centre (at the end of the episode: where it ended)."""
        return float(np.linalg.norm(self.fingertip() - self._positions[0]))

    def landmarks(self) -> Landmarks:
        """The discs' centres, in the arm's plane."""
        return Landmarks(objects={r: self._positions[i].copy() for i, r in enumerate(ROLES)})

    def chosen_role(self) -> str:
        """The disc nearest to the fingertip at the end of the episode."""
        return ROLES[int(np.argmin(np.linalg.norm(self._positions - self.fingertip(), axis=1)))]

    def _observe(self) -> Observation:
        if self._render_obs:
            image = self.family.preprocess(self.render_camera())
        else:
            image = np.zeros((0, 0, 3), np.uint8)
        return Observation(image=image, state=self.robot_state(), time=float(self.data.time))

    # -- privileged state ---------------------------------------------------------------------------

    def robot_state(self) -> np.ndarray:
        """float32 in STATE_NAMES order (the shoulder angle is continuous, not wrapped)."""
        return np.concatenate([self.data.qpos[:2], self.fingertip()]).astype(np.float32)

    def fingertip(self) -> np.ndarray:
        return self.data.site_xpos[self._tip_site, :2].copy()

    def object_position(self, role: str) -> np.ndarray:
        """xy of the disc playing ``role`` (privileged: the expert and the tests use it)."""
        return self._positions[ROLES.index(role)].copy()

    def distances(self) -> np.ndarray:
        """Fingertip-to-target distance after each step so far."""
        return np.asarray(self._distances)

    # -- camera -------------------------------------------------------------------------------------

    def render_camera(self) -> np.ndarray:
        """Top-down image; rendered at most once per physics state (run_episode asks twice per step)."""
        if self._frame is None:
            self._frame = self._camera.render(self.data)
        return self._frame.copy()

    def close(self) -> None:
        self._camera.close()

    # -- robot interface ----------------------------------------------------------------------------

    def ee_pose(self) -> np.ndarray:
        """Fingertip position and the forearm's orientation (a rotation about z by q0 + q1)."""
        return np.concatenate([self.data.site_xpos[self._tip_site], self.data.xquat[self._link1]])

    def joint_names(self) -> tuple[str, ...]:
        return JOINT_NAMES

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[:2].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[:2].copy()

    def gripper_is_open(self) -> bool:
        """The reacher has no gripper; report 'open' so the recorded stream stays uniform."""
        return True


# --------------------------------------------------------------------------------------------------
# Family


class ReachingFamily(TaskFamily):
    """Reach the disc of the target colour; two distractor discs of other colours share the arena."""

    name = "reaching"
    action_kind = "joint_effort"
    action_meaning = "torques"
    action_dim = 2
    state_names = STATE_NAMES
    camera_every = 1

    def __init__(self, config: ReachingConfig | None = None) -> None:
        self.config = config or ReachingConfig()
        self.control_rate_hz = self.config.control_rate_hz
        self.episode_steps = self.config.episode_steps
        self.horizon = self.config.episode_steps  # the policy acts at every control step
        self.camera_size = tuple(self.config.image_size)
        self.image_size = tuple(self.config.image_size)
        self._rgb = color_catalogue(self.config.n_colors, self.config.color_seed)
        self._splits = self._split_colors()
        self._tasks = {split: self._generate_tasks(split) for split in SPLITS}
        self._task_index = {
            (t.split, *(t.objects[r] for r in ROLES)): t for tasks in self._tasks.values() for t in tasks
        }

    # -- catalogue ----------------------------------------------------------------------------------

    def _split_colors(self) -> dict[str, tuple[str, ...]]:
        order = np.random.default_rng(self.config.split_seed).permutation(self.config.n_colors)
        n_test, n_val = self.config.n_test_colors, self.config.n_val_colors
        parts = {
            "test": order[:n_test],
            "val": order[n_test : n_test + n_val],
            "train": order[n_test + n_val :],
        }
        return {split: tuple(color_id(i) for i in sorted(idx)) for split, idx in parts.items()}

    def objects(self, split: str) -> tuple[str, ...]:
        return self._splits[check_split(split)]

    def distractor_pool(self, split: str) -> tuple[str, ...]:
        """Colours that may appear as distractors in ``split``: the split's own, or all held-out colours
        when a held-out split is too small to supply a target and two distractors (never train colours)."""
        own = self.objects(split)
        if split == "train" or len(own) >= len(ROLES):
            return own
        return tuple(sorted(self._splits["val"] + self._splits["test"]))

    def color_rgb(self, object_id: str) -> np.ndarray:
        """Catalogue RGB in [0, 1] of a colour id."""
        index = self._color_index(object_id)
        if index is None:
            raise TaskError(f"unknown colour id {object_id!r} for family 'reaching'")
        return self._rgb[index].copy()

    def _color_index(self, object_id: str) -> int | None:
        if not object_id.startswith("color_") or not object_id[6:].isdigit():
            return None
        index = int(object_id[6:])
        return index if 0 <= index < self.config.n_colors and object_id == color_id(index) else None

    def _split_of(self, object_id: str) -> str | None:
        return next((s for s in SPLITS if object_id in self._splits[s]), None)

    # -- tasks --------------------------------------------------------------------------------------

    def _generate_tasks(self, split: str) -> list[Task]:
        """Targets cycle through the split's colours in seeded order; distractors are drawn at random."""
        c = self.config
        n = {"train": c.train_tasks, "val": c.val_tasks, "test": c.test_tasks}[split]
        own, pool = self.objects(split), self.distractor_pool(split)
        capacity = len(own) * (len(pool) - 1) * (len(pool) - 2)
        if n > capacity:
            raise TaskError(f"{split}_tasks={n} exceeds the {capacity} distinct {split} tasks the colours allow")
        rng = np.random.default_rng([self.config.task_seed, SPLITS.index(split)])
        tasks: list[Task] = []
        seen: set[tuple[str, ...]] = set()
        while len(tasks) < n:
            for t in rng.permutation(own):
                others = [c for c in pool if c != t]
                d0, d1 = (others[i] for i in rng.choice(len(others), size=2, replace=False))
                key = (str(t), d0, d1)
                if key in seen or len(tasks) == n:
                    continue
                seen.add(key)
                objects = dict(zip(ROLES, key, strict=True))
                tasks.append(Task(self.name, f"{self.name}/{split}/{len(tasks):04d}", split, objects))
        return tasks

    def tasks(self, split: str) -> list[Task]:
        return list(self._tasks[check_split(split)])

    def make_task(self, split: str, **roles: str) -> Task:
        """A task from explicit colour ids; the listed task (and its id) when the combination is listed."""
        check_split(split)
        if set(roles) != set(ROLES):
            raise TaskError(f"reaching tasks need exactly the roles {', '.join(ROLES)}; got {sorted(roles)}")
        self._check_in_split(roles["target"], "target", split, self.objects(split))
        for role in ROLES[1:]:
            self._check_in_split(roles[role], role, split, self.distractor_pool(split))
        ids = tuple(roles[r] for r in ROLES)
        if len(set(ids)) != len(ids):
            raise TaskError(f"target and distractor colours must differ; got {dict(roles)}")
        listed = self._task_index.get((split, *ids))
        if listed is not None:
            return listed
        return Task(self.name, f"{self.name}/{split}/{'+'.join(ids)}", split, {r: roles[r] for r in ROLES})

    def _check_in_split(self, object_id: str, role: str, split: str, allowed: tuple[str, ...]) -> None:
        if object_id in allowed:
            return
        if self._color_index(object_id) is None:
            raise TaskError(
                f"unknown colour id {object_id!r} for role {role!r}; reaching colours are "
                f"color_000..{color_id(self.config.n_colors - 1)}"
            )
        raise TaskError(
            f"colour {object_id!r} (role {role!r}) is a {self._split_of(object_id)} colour, "
            f"not allowed in a {split} reaching task"
        )

    # -- envs and experts ---------------------------------------------------------------------------

    def make_env(self, task: Task, trial_seed: int, render: bool = True) -> ReachingEnv:
        if task.family != self.name:
            raise TaskError(f"task {task.task_id!r} belongs to family {task.family!r}, not {self.name!r}")
        self.make_task(task.split, **dict(task.objects))  # the same checks as for a requested task
        if not isinstance(trial_seed, int | np.integer) or trial_seed < 0:
            raise TaskError(f"trial_seed must be a non-negative integer, got {trial_seed!r}")
        return ReachingEnv(self, task, int(trial_seed), render)

    def make_expert(self, env: Env, seed: int, noise: float = 1.0) -> Expert:
        """PD reach toward the target (privileged position) plus Gaussian torque noise scaled by ``noise``."""
        if not isinstance(env, ReachingEnv):
            raise TypeError(f"reaching expert needs a ReachingEnv, got {type(env).__name__}")
        if noise < 0:
            raise TaskError(f"noise must be >= 0, got {noise!r}")
        rng = np.random.default_rng(seed)
        std = noise * self.config.expert_noise_std
        cfg = self.config

        def expert(obs: Observation) -> np.ndarray:
            action = reach_action(obs.state, env.object_position("target"), cfg)
            if std > 0:
                action = action + rng.normal(0.0, std, size=2)
            return np.clip(action, -1.0, 1.0).astype(np.float32)

        return expert

    def preprocess(self, camera_image: np.ndarray) -> np.ndarray:
        """The camera already renders at the policy resolution; only check the shape."""
        w, h = self.image_size
        if camera_image.shape != (h, w, 3):
            raise ValueError(f"reaching camera image must be {(h, w, 3)} (H, W, 3), got {camera_image.shape}")
        return np.asarray(camera_image, dtype=np.uint8)
