"""The interfaces every task family shares: tasks, environments, experts and recorded episodes.

The meta-learning code, the demo generator, the ROS sim node and the evaluation all talk to a task
family only through these types, so a new family (or the real robot) plugs in without touching them.
Nothing here imports ROS.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

ActionKind = Literal["ee_twist", "joint_effort"]
SPLITS = ("train", "val", "test")


class TaskError(ValueError):
    """Bad task request: unknown family, object not in the split, bad horizon, ... (message says which)."""


@dataclass(frozen=True)
class Task:
    """One task of a family: which objects play which role. Positions vary per trial, not per task.

    ``objects`` maps a role (``held``, ``target``, ``distractor_0``, ...) to an object id of the family's
    catalogue; every id belongs to ``split``.
    """

    family: str
    task_id: str
    split: str
    objects: Mapping[str, str]

    def to_json(self) -> str:
        return json.dumps(
            {"family": self.family, "task_id": self.task_id, "split": self.split, "objects": dict(self.objects)},
            sort_keys=True,
        )

    @staticmethod
    def from_json(text: str) -> Task:
        d = json.loads(text)
        return Task(family=d["family"], task_id=d["task_id"], split=d["split"], objects=dict(d["objects"]))


@dataclass(frozen=True)
class Landmarks:
    """Where the things a policy has to find lie in a trial, (x, y) in the robot's base frame (m).

    ``objects`` are the candidates a demonstration chooses among, by role (``target`` and the
    distractors); ``markers`` are what every task of the family shows in the same role (pushing's red
    goal). Not a policy input (a policy sees pixels): probes use it to ask whether a network can see
    these at all, apart from whether it can tell from a demo which object is meant.
    """

    objects: Mapping[str, np.ndarray]
    markers: Mapping[str, np.ndarray] = field(default_factory=dict)

    def target_centroid_distance(self) -> float:
        """Distance from the target to the objects' centroid: a guess that sees every object but not
        which one the demo means does no better in the mean-squared sense."""
        points = np.stack([np.asarray(v, dtype=np.float64) for v in self.objects.values()])
        return float(np.linalg.norm(np.asarray(self.objects["target"], dtype=np.float64) - points.mean(axis=0)))


@dataclass
class Observation:
    """What a policy sees at one control step."""

    image: np.ndarray  # (H, W, 3) uint8 RGB at the family's configured policy resolution
    state: np.ndarray  # float32 robot configuration; meaning of each entry in TaskFamily.state_names
    time: float  # seconds since reset


DRIVEN_BY = "driven_by"  # Episode.metadata key: who chose the applied actions
DRIVEN_BY_POLICY = "policy"  # ... a learned policy (DAgger data); absent or anything else: a demonstrator
MOVED_NONE = "none"  # Env.moved_role when the trial moved no object (evaluations write it to trials.csv)


@dataclass
class Episode:
    """A recorded rollout at the control rate (the raw stream a teleop recording would also give).

    Images are recorded every ``camera_every`` control steps (camera rate <= control rate); all other
    streams at every control step. ``actions[i]`` is the command applied from ``times[i]`` on.
    ``labels[i]``, when present, is the action the demonstrator chose at step i where a perturbation
    was applied on top of it (DART-style demos, :mod:`mil_sim.perturbation`): the policy learns the
    labels, and replaying ``actions`` retraces the states.
    """

    task: Task
    trial_seed: int
    control_rate_hz: float
    action_kind: ActionKind
    times: np.ndarray  # (N,) float64 seconds
    states: np.ndarray  # (N, S) float32
    ee_poses: np.ndarray  # (N, 7) float64: x y z qw qx qy qz in the robot base frame
    joint_names: tuple[str, ...]
    joint_positions: np.ndarray  # (N, J) float64
    joint_velocities: np.ndarray  # (N, J) float64
    gripper_open: np.ndarray  # (N,) bool: commanded gripper state at each step
    actions: np.ndarray  # (N, A) float32
    image_times: np.ndarray  # (M,) float64 seconds
    images: np.ndarray  # (M, H, W, 3) uint8, full camera resolution (before any crop)
    success: bool
    metadata: dict[str, object] = field(default_factory=dict)
    labels: np.ndarray | None = None  # (N, A) float32, or None: the applied actions are the labels

    @property
    def is_demonstration(self) -> bool:
        """False for a rollout the learned policy drove with the expert's labels (DAgger,
        :class:`mil_sim.perturbation.PolicyTakeover`): its labels supervise, but it does not show the task
        being done, so it must never be the demo a policy adapts to."""
        return self.metadata.get(DRIVEN_BY) != DRIVEN_BY_POLICY

    @property
    def targets(self) -> np.ndarray:
        """What a policy should learn to output at each step: the labels if any, else the actions."""
        return self.actions if self.labels is None else self.labels

    def __len__(self) -> int:
        return len(self.times)


class Env(ABC):
    """One trial of one task: a seeded scene layout. Step with ``action`` for one control period."""

    task: Task
    trial_seed: int

    @abstractmethod
    def reset(self) -> Observation:
        """Lay out the scene for ``trial_seed`` and return the first observation."""

    @abstractmethod
    def step(self, action: np.ndarray) -> Observation:
        """Apply ``action`` for one control period (1 / control_rate_hz) and observe."""

    @abstractmethod
    def end_episode(self) -> None:
        """What happens after the last step (placing: open the gripper and let the object settle)."""

    @abstractmethod
    def success(self) -> bool:
        """The seed paper's success criterion for this family, evaluated on what has happened so far."""

    def chosen_role(self) -> str | None:
        """The object the episode ended at: ``"target"`` or a distractor's role (None: the family has none).

        Success mixes choosing the right object with handling it precisely; this separates the two, so a
        one-shot policy can be compared with chance (one over the number of objects) at choosing.
        """
        return None

    def moved_role(self) -> str | None:
        """The object the policy moved furthest from where the trial put it: ``"target"``, a distractor's
        role, or ``MOVED_NONE`` when none moved (None: the family's objects are not for moving).

        Why: where an episode ended (``chosen_role``) also depends on where the objects started: in pushing,
        a policy that moves nothing still "ends" at whichever object lay nearer the goal. The object it
        moved is the one it went for, which is the choice a one-shot policy has to read from the demo.
        """
        return None

    def landmarks(self) -> Landmarks | None:
        """The current trial's objects and markers in the table plane (None: the family does not say)."""
        return None

    def target_distance(self) -> float | None:
        """How far (m, in the plane) what the policy moves ended from where the task wanted it (None: the
        family does not say).

        Success mostly thresholds this distance (each family adds its own conditions); the distance itself
        says how near a miss was, which tells an imprecise policy from one that went elsewhere.
        """
        return None

    @abstractmethod
    def render_camera(self) -> np.ndarray:
        """Full-resolution camera image (H, W, 3) uint8, before the policy's downsample/crop."""

    @abstractmethod
    def ee_pose(self) -> np.ndarray:
        """End-effector pose (7,): position and unit quaternion (w, x, y, z) in the base frame."""

    @abstractmethod
    def joint_names(self) -> tuple[str, ...]: ...

    @abstractmethod
    def joint_positions(self) -> np.ndarray: ...

    @abstractmethod
    def joint_velocities(self) -> np.ndarray: ...

    @abstractmethod
    def gripper_is_open(self) -> bool: ...

    def close(self) -> None:  # noqa: B027 - optional hook, most envs hold nothing to release
        """Release renderer resources."""


Expert = Callable[[Observation], np.ndarray]


class TaskFamily(ABC):
    """A family of related tasks (seed paper section 6): catalogue, split, envs, expert, success."""

    name: str
    action_kind: ActionKind
    action_dim: int
    state_names: tuple[str, ...]
    control_rate_hz: float
    episode_steps: int  # control steps per episode
    horizon: int  # policy steps T after subsampling the episode (placing: 30)
    camera_every: int  # control steps per camera frame
    camera_size: tuple[int, int]  # (width, height) rendered
    image_size: tuple[int, int]  # (width, height) the policy sees after preprocessing

    @abstractmethod
    def objects(self, split: str) -> tuple[str, ...]:
        """Object ids of a split (fixed by a seed: held-out objects never appear in train tasks)."""

    @abstractmethod
    def tasks(self, split: str) -> list[Task]:
        """The family's fixed, seeded list of tasks of ``split``."""

    @abstractmethod
    def make_task(self, split: str, **roles: str) -> Task:
        """Build a task from explicit object ids; raises TaskError for ids outside ``split``."""

    @abstractmethod
    def make_env(self, task: Task, trial_seed: int, render: bool = True) -> Env: ...

    @abstractmethod
    def make_expert(self, env: Env, seed: int, noise: float = 1.0) -> Expert:
        """Scripted expert with privileged state; ``noise`` scales injected noise (0 = deterministic)."""

    @abstractmethod
    def preprocess(self, camera_image: np.ndarray) -> np.ndarray:
        """Camera image -> policy image (placing: downsample by 2 and crop to 100x90, appendix A.3)."""

    def demo_target(self, ee_poses: np.ndarray) -> np.ndarray:
        """The (x, y) point the policy's auxiliary target head regresses for a demo with these ee poses.

        It should be where the demonstration says the task is, so that predicting it from a new scene
        forces the network to read the demo. Default: where the end effector ends (placing: over the
        chosen container; reaching: on the chosen disc). Only the robot's own stream is used, as a teleop
        recording has no object poses.
        """
        return np.asarray(ee_poses[-1, :2], dtype=np.float32)

    def task(self, task_id: str) -> Task:
        """Look a task up by id (``family/split/index``)."""
        for split in SPLITS:
            for t in self.tasks(split):
                if t.task_id == task_id:
                    return t
        raise TaskError(f"unknown task id {task_id!r} for family {self.name!r}")

    action_meaning = "numbers"  # what an action's entries are, for error messages

    @property
    def action_limits(self) -> np.ndarray:
        """Symmetric per-dimension action bounds (default 1: normalised motor commands)."""
        return np.ones(self.action_dim)

    def random_action(self, rng: np.random.Generator) -> np.ndarray:
        """A uniformly random action within the family's action bounds (the paper's random policy)."""
        return rng.uniform(-self.action_limits, self.action_limits).astype(np.float32)

    def is_valid_action(self, action: np.ndarray) -> bool:
        """Whether ``action`` has this family's shape and is finite: the one check of every path that applies
        an action (clip_action, run_episode's perturbations, evaluate's and the runner's policy), each with
        its own message."""
        return action.shape == (self.action_dim,) and bool(np.all(np.isfinite(action)))

    def clip_action(self, action: np.ndarray) -> np.ndarray:
        """``action`` within the family's action bounds, after checking its shape and that it is finite."""
        if not self.is_valid_action(action):
            raise ValueError(
                f"{self.name} action must be {self.action_dim} finite {self.action_meaning}, got {action!r}"
            )
        return np.clip(action, -self.action_limits, self.action_limits)


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise TaskError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


def not_in_split(object_id: str, role: str, split: str, belongs_to: str | None) -> TaskError:
    """The error for a task object outside the requested split, naming the split it does belong to."""
    hint = f"it belongs to the {belongs_to} split" if belongs_to else "no such object in the catalogue"
    return TaskError(f"object {object_id!r} for role {role!r} is not in the {split} split ({hint})")


def check_positive(name: str, value: int | float) -> None:
    if not value > 0:
        raise TaskError(f"{name} must be positive, got {value!r}")
