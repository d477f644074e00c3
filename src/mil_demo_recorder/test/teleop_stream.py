"""A synthetic VR-teleop stream for the recorder tests: real sim camera frames plus expert commands.

An expert rollout of the placing sim (rendered images, poses, joint states, the expert's twists) is
turned into the messages a teleop session publishes on the PR2 topic names, each with its own header
stamp: state and command messages every control step, camera frames every ``camera_every`` steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Bool

from mil_demo_recorder.recording import DemoRecording, RecordedStream, RecordingConfig
from mil_demo_recorder.streams import BY_KEY
from mil_demo_recorder.task_info import task_metadata
from mil_sim.core import Episode
from mil_sim.families import get_family
from mil_sim.image_msgs import fill_msg
from mil_sim.rollout import run_episode

TOPICS = {
    "image": "/head_mount_kinect/rgb/image_raw",
    "pose": "/r_gripper_tool_frame/pose",
    "command": "/ee_cmd_vel",
    "joint_states": "/joint_states",
    "gripper": "/gripper/open",
}
TYPES = {
    "image": Image,
    "pose": PoseStamped,
    "command": TwistStamped,
    "joint_states": JointState,
    "gripper": Bool,
}


@dataclass(frozen=True)
class StreamMsg:
    key: str  # stream key of mil_demo_recorder.streams
    offset_ns: int  # since the start of the stream
    msg: Any  # rclpy message (header stamp filled by ``stamp``)


@cache
def expert_episode(task_id: str = "placing/train/0", trial_seed: int = 3, steps: int | None = None) -> Episode:
    family = get_family("placing")
    env = family.make_env(family.task(task_id), trial_seed=trial_seed, render=False)
    try:
        return run_episode(family, env, family.make_expert(env, seed=trial_seed), steps=steps)
    finally:
        env.close()


def stream_messages(episode: Episode, gripper_at_end: bool = True) -> list[StreamMsg]:
    """The messages of ``episode`` in publication order (header stamps still zero)."""
    out: list[StreamMsg] = []
    dt_ns = round(1e9 / episode.control_rate_hz)
    frames = {round(t * episode.control_rate_hz): k for k, t in enumerate(episode.image_times)}
    for i in range(len(episode)):
        t = i * dt_ns
        if i in frames:
            out.append(StreamMsg("image", t, fill_msg(Image(), episode.images[frames[i]], "rgb8", as_bytes=True)))
        pose = PoseStamped()
        pose.header.frame_id = "base_link"
        p = episode.ee_poses[i]
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in p[:3])
        o = pose.pose.orientation
        o.w, o.x, o.y, o.z = (float(v) for v in p[3:])
        out.append(StreamMsg("pose", t, pose))
        js = JointState()
        js.name = list(episode.joint_names)
        js.position = episode.joint_positions[i].tolist()
        js.velocity = episode.joint_velocities[i].tolist()
        out.append(StreamMsg("joint_states", t, js))
        tw = TwistStamped()
        tw.header.frame_id = "base_link"
        a = episode.actions[i].astype(np.float64)
        tw.twist.linear.x, tw.twist.linear.y, tw.twist.linear.z = (float(v) for v in a[:3])
        tw.twist.angular.x, tw.twist.angular.y, tw.twist.angular.z = (float(v) for v in a[3:])
        out.append(StreamMsg("command", t, tw))
    if gripper_at_end:
        out.append(StreamMsg("gripper", len(episode) * dt_ns, Bool(data=True)))
    return out


def stamp(msg: Any, ns: int) -> Any:
    """Set the header stamp of ``msg`` (if it has a header) to ``ns`` and return it."""
    if hasattr(msg, "header"):
        msg.header.stamp.sec, msg.header.stamp.nanosec = ns // 1_000_000_000, ns % 1_000_000_000
    return msg


def record_offline(
    path: Path,
    episode: Episode,
    *,
    start_ns: int = 1_700_000_000 * 10**9,
    task_id: str | None = None,
    split: str = "train",
    finish: bool = True,
    mutate: Callable[[str, Any], Any] | None = None,
    skip: tuple[str, ...] = (),
    drop: Callable[[str, int], bool] | None = None,
    compressed: bool = False,
) -> DemoRecording:
    """Record ``episode``'s stream through a DemoRecording without ROS (bags for dataset/replay tests).

    ``mutate(key, msg)`` may change messages before they are serialized; ``skip`` leaves streams out,
    ``drop(key, offset_ns)`` single messages; ``compressed`` sends the camera as PNG CompressedImage.
    """
    keys = [k for k in TOPICS if not (compressed and k == "image")] + (["compressed_image"] if compressed else [])
    streams = [RecordedStream(BY_KEY[k], TOPICS.get(k, "/camera/compressed")) for k in keys]
    family = get_family("placing")
    params = {
        "task_id": task_id or episode.task.task_id,
        "split": split,
        "family": "placing",
        "trial_seed": episode.trial_seed,
    }
    task = task_metadata(
        params,
        {"objects": dict(episode.task.objects)},
        state_names=list(family.state_names),
        control_rate_hz=family.control_rate_hz,
        command_timeout_s=0.2,
        grid="control",
        gripper_open_initial=False,
    )
    clock = [start_ns]
    rec = DemoRecording(path, streams, task, RecordingConfig(flush_period_s=0.05), clock_ns=lambda: clock[0])
    rec.start()
    for m in stream_messages(episode):
        if m.key in skip or (drop is not None and drop(m.key, m.offset_ns)):
            continue
        key, msg = m.key, m.msg
        if compressed and key == "image":
            key, msg = "compressed_image", to_png(msg)
        t = start_ns + m.offset_ns
        msg = stamp(msg, t)
        if mutate is not None:
            msg = mutate(key, msg)
        clock[0] = t + 2_000_000  # received 2 ms after the stamp
        rec.put(BY_KEY[key].layout_topic, clock[0], serialize_message(msg))
    if finish:
        rec.finish()
    return rec


def to_png(image_msg: Image) -> CompressedImage:
    """An rgb8 Image as image_transport's ``png`` CompressedImage (BGR inside, as OpenCV writes it)."""
    rgb = np.frombuffer(bytes(image_msg.data), np.uint8).reshape(image_msg.height, image_msg.width, 3)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    return CompressedImage(format="rgb8; png compressed bgr8", data=buf.tobytes())
