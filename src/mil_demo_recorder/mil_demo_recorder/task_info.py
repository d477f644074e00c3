"""The task JSON of a recorded demo, from the recorder's parameters and the latched ``/mil/task`` topic.

A parameter that is set (non-empty) wins: the operator said so explicitly. Whatever is left unset comes
from the newest ``/mil/task`` message (the sim node publishes its current task there; on the real robot
a script can), so in the sim nobody types object ids. A demo without a task id is refused: the dataset
builder groups demos by task, and an unlabeled demo could never be used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mil_sim.core import SPLITS

TASK_PARAMS = (
    "family",
    "task_id",
    "split",
    "held",
    "target",
    "distractors",
    "trial_seed",
    "operator",
    "notes",
)


class TaskInfoError(ValueError):
    """Not enough (or inconsistent) task information to label a demo; the message says what to set."""


def parse_task_topic(text: str) -> dict[str, Any]:
    """A ``/mil/task`` message (Task JSON: family, task_id, split, objects); TaskInfoError if malformed."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskInfoError(f"/mil/task is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("objects", {}), dict):
        raise TaskInfoError(f"/mil/task must be a JSON object with an 'objects' mapping, got {text[:80]!r}")
    return doc


def objects_from_params(held: str, target: str, distractors: str) -> dict[str, str]:
    """Roles -> object ids as the families name them (``held``, ``target``, ``distractor_<i>``)."""
    objects = {}
    if held:
        objects["held"] = held
    if target:
        objects["target"] = target
    for i, name in enumerate(d.strip() for d in distractors.split(",") if d.strip()):
        objects[f"distractor_{i}"] = name
    return objects


def task_metadata(
    params: Mapping[str, Any],
    topic_task: Mapping[str, Any] | None,
    *,
    state_names: list[str],
    control_rate_hz: float,
    command_timeout_s: float,
    grid: str,
    gripper_open_initial: bool,
) -> dict[str, Any]:
    """The task JSON stored in a demo bag (keys that :func:`mil_sim.demo_bag.read_episode` requires)."""
    topic_task = dict(topic_task or {})
    objects = objects_from_params(params.get("held", ""), params.get("target", ""), params.get("distractors", ""))
    if not objects:
        objects = {str(k): str(v) for k, v in (topic_task.get("objects") or {}).items()}
    task_id = params.get("task_id") or topic_task.get("task_id") or ""
    if not task_id:
        raise TaskInfoError(
            "no task for this demo: set the task_id parameter (and held/target/distractors) or publish the "
            "task JSON on /mil/task"
        )
    split = params.get("split") or topic_task.get("split") or "train"
    if split not in SPLITS:
        raise TaskInfoError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    return {
        "format_version": 1,
        "family": params.get("family") or topic_task.get("family") or "placing",
        "task_id": str(task_id),
        "split": split,
        "objects": objects,
        "trial_seed": int(params.get("trial_seed", -1)),
        "action_kind": "ee_twist",
        "source": "vr_teleop",
        "operator": params.get("operator", ""),
        "notes": params.get("notes", ""),
        "state_names": list(state_names),
        "control_rate_hz": float(control_rate_hz),
        "grid": grid,
        "command_timeout_s": float(command_timeout_s),
        "gripper_open_initial": bool(gripper_open_initial),
        "task_from_topic": bool(topic_task) and not params.get("task_id"),
    }
