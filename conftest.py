"""Shared pytest fixtures for every package's tests."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator

import pytest


@pytest.fixture
def domain_id() -> Iterator[int]:
    """A ROS_DOMAIN_ID in 100..200 for this test only, set before any rclpy.init.

    Tests run real DDS participants; a private domain keeps parallel runs (and other processes on the
    machine) from hearing each other.
    """
    rng = random.Random(os.getpid() * 1_000_003 + time.monotonic_ns())
    value = rng.randint(100, 200)
    old = os.environ.get("ROS_DOMAIN_ID")
    os.environ["ROS_DOMAIN_ID"] = str(value)
    yield value
    if old is None:
        os.environ.pop("ROS_DOMAIN_ID", None)
    else:
        os.environ["ROS_DOMAIN_ID"] = old
