"""Declare a node's parameters from one table, with defaults from a YAML file and typed validation.

Every mil node lists its parameters as (name, built-in default, description, read_only) rows. The
pip-mode bringup passes the node's section of a ``config/*.yaml`` file as ``defaults`` (so ``--ros-args
-p`` still wins over it, as with ``ros2 launch``); values are checked against the built-in default's type.
Floats are declared with dynamic typing so that ``20`` in YAML is accepted for a double.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.node import Node

ParameterSpec = tuple[str, Any, str, bool]


class NodeConfigError(ValueError):
    """A parameter with the wrong type or value: the node refuses to start and says which."""


def declare_parameters(
    node: Node,
    spec: Sequence[ParameterSpec],
    defaults: Mapping[str, Any] | None = None,
    positive_floats: bool = True,
) -> dict[str, Any]:
    """Declare every row of ``spec`` on ``node`` and return the validated values by name."""
    defaults = dict(defaults or {})
    known = {name for name, *_ in spec}
    for name in sorted(set(defaults) - known - {"use_sim_time"}):
        node.get_logger().warning(f"ignoring unknown parameter {name!r} (not a {node.get_name()} parameter)")
    values: dict[str, Any] = {}
    for name, builtin, description, read_only in spec:
        is_float = isinstance(builtin, float)
        descriptor = ParameterDescriptor(description=description, read_only=read_only, dynamic_typing=is_float)
        try:
            value = node.declare_parameter(name, defaults.get(name, builtin), descriptor).value
        except InvalidParameterTypeException as e:
            raise NodeConfigError(f"parameter {name!r} must be of type {type(builtin).__name__}: {e}") from None
        if is_float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise NodeConfigError(f"parameter {name!r} must be a finite number, got {value!r}")
            value = float(value)
            if positive_floats and value <= 0:
                raise NodeConfigError(f"parameter {name!r} must be positive, got {value!r}")
        elif isinstance(builtin, list):
            if not isinstance(value, (list, tuple)) or len(value) != len(builtin):
                raise NodeConfigError(f"parameter {name!r} must be a list of {len(builtin)} values, got {value!r}")
            value = [float(v) for v in value]
        elif type(value) is not type(builtin):
            raise NodeConfigError(
                f"parameter {name!r} must be of type {type(builtin).__name__}, got {value!r} ({type(value).__name__})"
            )
        values[name] = value
    return values
