"""rclpy message classes and QoS profiles for bag topics (shared by the recorder node and replay)."""

from __future__ import annotations

import importlib
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import Qos, QosDurability, QosReliability


class UnknownMessageTypeError(ValueError):
    """A bag topic whose type has no installed rclpy message package."""


def message_class(msgtype: str) -> Any:
    """``sensor_msgs/msg/Image`` -> the rclpy class ``sensor_msgs.msg.Image``."""
    try:
        package, kind, name = msgtype.split("/")
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ValueError, ImportError, AttributeError):
        raise UnknownMessageTypeError(f"no installed ROS message type {msgtype!r}") from None


def to_rclpy_qos(qos: Qos | None, depth: int = 10) -> QoSProfile:
    """An rclpy QoS profile equivalent to a bag's offered QoS (reliability, durability, depth)."""
    if qos is None:
        return QoSProfile(depth=depth)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=max(int(qos.depth), 1),
        reliability=(
            ReliabilityPolicy.BEST_EFFORT
            if qos.reliability == QosReliability.BEST_EFFORT
            else ReliabilityPolicy.RELIABLE
        ),
        durability=(
            DurabilityPolicy.TRANSIENT_LOCAL
            if qos.durability == QosDurability.TRANSIENT_LOCAL
            else DurabilityPolicy.VOLATILE
        ),
    )
