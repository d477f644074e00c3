"""The teleop streams the recorder knows: layout topic, message type, QoS, and how to read a stamp cheaply.

Input topic names are parameters (``<key>_topic``); inside a bag every stream goes under the topic name
of :mod:`mil_sim.demo_bag`'s layout, so one reader serves sim-generated and teleop-recorded demos and
``ros2 bag play`` republishes both the same way. The recorder subscribes with ``raw=True`` and writes
the serialized bytes as received (no decode/encode per image); the few fields it needs for its
statistics (header stamp, Bool value) are read straight from the CDR bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosReliability

from mil_sim import demo_bag as db


@dataclass(frozen=True)
class StreamSpec:
    """One recorded stream. ``key`` names its parameters (``image_topic``, ``min_rate_hz.image``)."""

    key: str
    layout_topic: str
    msgtype: str
    default_input: str
    stamped: bool  # the message starts with a std_msgs/Header
    required: bool  # a demo without it cannot become an Episode (warned about at stop)
    sensor_qos: bool = False  # subscribe best effort (camera streams), record that QoS for replay
    default_min_rate_hz: float = 0.0  # warn when the received rate is below this (0: no check)


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec(
        "image",
        db.IMAGE_TOPIC,
        db.RAW_MSGTYPES[db.IMAGE_TOPIC],
        "/head_mount_kinect/rgb/image_raw",
        True,
        True,
        sensor_qos=True,
        default_min_rate_hz=5.0,
    ),
    StreamSpec(
        "compressed_image",
        db.COMPRESSED_IMAGE_TOPIC,
        db.RAW_MSGTYPES[db.COMPRESSED_IMAGE_TOPIC],
        "",
        True,
        False,
        sensor_qos=True,
        default_min_rate_hz=5.0,
    ),
    StreamSpec(
        "pose",
        db.EE_POSE_TOPIC,
        db.RAW_MSGTYPES[db.EE_POSE_TOPIC],
        "/r_gripper_tool_frame/pose",
        True,
        True,
        default_min_rate_hz=10.0,
    ),
    StreamSpec(
        "command",
        db.EE_CMD_VEL_TOPIC,
        db.RAW_MSGTYPES[db.EE_CMD_VEL_TOPIC],
        "/ee_cmd_vel",
        True,
        True,
        default_min_rate_hz=5.0,
    ),
    StreamSpec(
        "joint_states",
        db.JOINT_STATES_TOPIC,
        db.RAW_MSGTYPES[db.JOINT_STATES_TOPIC],
        "/joint_states",
        True,
        True,
        default_min_rate_hz=10.0,
    ),
    StreamSpec(
        "gripper",
        db.GRIPPER_OPEN_TOPIC,
        db.RAW_MSGTYPES[db.GRIPPER_OPEN_TOPIC],
        "/gripper/open",
        False,
        False,
    ),
    StreamSpec("joy", db.JOY_TOPIC, db.RAW_MSGTYPES[db.JOY_TOPIC], "/joy", True, False),
)
BY_KEY = {s.key: s for s in STREAMS}
BY_LAYOUT = {s.layout_topic: s for s in STREAMS}
IMAGE_KEYS = ("image", "compressed_image")


def _qos(reliability: QosReliability, durability: QosDurability, depth: int) -> Qos:
    return db.DEFAULT_QOS._replace(
        reliability=reliability, durability=durability, depth=depth, history=QosHistory.KEEP_LAST
    )


# Offered QoS stored with each bag topic: ``ros2 bag play`` and the replay tool publish with it.
SENSOR_QOS = _qos(QosReliability.BEST_EFFORT, QosDurability.VOLATILE, 5)
LATCHED_QOS = _qos(QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, 1)


def bag_qos(layout_topic: str) -> Qos:
    """The QoS a bag topic is replayed with: as its source offered it (camera best effort, task latched)."""
    if layout_topic == db.TASK_TOPIC:
        return LATCHED_QOS
    spec = BY_LAYOUT.get(layout_topic)
    return SENSOR_QOS if spec is not None and spec.sensor_qos else db.DEFAULT_QOS


def cdr_stamp_ns(data: bytes | memoryview) -> int | None:
    """Header stamp (ns) of a CDR-serialized message that starts with a std_msgs/Header, else None.

    Layout: 4-byte encapsulation header (byte 1: 0x01 little endian, 0x00 big endian), then
    ``int32 sec, uint32 nanosec``.
    """
    if len(data) < 12:
        return None
    fmt = "<iI" if data[1] & 1 else ">iI"
    sec, nanosec = struct.unpack_from(fmt, data, 4)
    return sec * 1_000_000_000 + nanosec


def cdr_bool(data: bytes | memoryview) -> bool | None:
    """The value of a CDR-serialized std_msgs/Bool (first byte after the encapsulation header)."""
    return bool(data[4]) if len(data) >= 5 else None
