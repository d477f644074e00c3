"""Read ROS 2 parameter YAML files without ``ros2 launch``, so one ``config/*.yaml`` serves both modes.

Under real ROS, ``ros2 launch`` / ``ros2 run ... --ros-args --params-file FILE`` hands the file to rcl,
which gives each node its own section. In pip mode (one process, several nodes, no launch) that does not
work: ``--params-file`` is a process-wide argument, and rcl's parser reports a bad file as an opaque
``RCLError``. This module reads the same standard layout::

    /**:                      # optional: applies to every node
      ros__parameters: {use_sim_time: false}
    mil_sim:                  # node name; "/mil_sim" and "/ns/mil_sim" are accepted as well
      ros__parameters:
        task_id: placing/test/0
        camera: {rate_hz: 10.0}   # nested mappings become dotted names: camera.rate_hz

and returns the parameters of one node as a flat dict, which :func:`to_parameter_overrides` turns into
``Node(..., parameter_overrides=...)``. Errors name the file and what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

PARAMS_KEY = "ros__parameters"
WILDCARDS = ("/**", "**")
_SCALARS = (bool, int, float, str)


class ParamsFileError(ValueError):
    """A parameters file is missing, is not YAML, or has no usable section for the requested node."""


def _normalise(name: str) -> str:
    """Fully qualified node name: leading slash, no trailing slash ("mil_sim" -> "/mil_sim")."""
    name = name.strip().rstrip("/")
    return name if name.startswith("/") else "/" + name


def _flatten(prefix: str, tree: Mapping[Any, Any], out: dict[str, Any], where: str) -> None:
    """Nested mappings become dotted parameter names, the way rcl reads them."""
    for key, value in tree.items():
        if not isinstance(key, str) or not key:
            raise ParamsFileError(f"{where}: parameter names must be non-empty strings, got {key!r}")
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _flatten(name + ".", value, out, where)
        else:
            out[name] = _check_value(name, value, where)


def _check_value(name: str, value: Any, where: str) -> Any:
    """Only the types a ROS parameter can hold; a list must be non-empty and of one element type."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, list):
        if not value:
            raise ParamsFileError(f"{where}: parameter {name!r} is an empty list, whose ROS type is unknown")
        if all(isinstance(v, bool) for v in value) or all(isinstance(v, str) for v in value):
            return list(value)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            # [1, 2.5] is a double array to a human; keep pure int lists as integer arrays.
            return list(value) if all(isinstance(v, int) for v in value) else [float(v) for v in value]
        raise ParamsFileError(f"{where}: parameter {name!r} mixes element types: {value!r}")
    raise ParamsFileError(
        f"{where}: parameter {name!r} has unsupported value {value!r} ({type(value).__name__}); "
        "use a bool, int, float, string or a list of one of those"
    )


def _section_params(path: Path, key: str, section: Any) -> dict[str, Any]:
    where = f"{path} [{key}]"
    if not isinstance(section, Mapping) or PARAMS_KEY not in section:
        raise ParamsFileError(f"{where}: expected a mapping with a '{PARAMS_KEY}' key, got {section!r}")
    params = section[PARAMS_KEY]
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ParamsFileError(f"{where}: '{PARAMS_KEY}' must be a mapping of names to values, got {params!r}")
    out: dict[str, Any] = {}
    _flatten("", params, out, where)
    return out


def read_params_file(path: str | Path) -> dict[str, Any]:
    """Parse the YAML of a parameters file and check its top level is a mapping of node sections."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ParamsFileError(f"parameters file {path} does not exist") from None
    except OSError as e:
        raise ParamsFileError(f"cannot read parameters file {path}: {e}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ParamsFileError(f"parameters file {path} is not valid YAML: {e}") from None
    if not isinstance(doc, dict) or not doc:
        raise ParamsFileError(f"parameters file {path} must map node names to {{{PARAMS_KEY}: {{...}}}}, got {doc!r}")
    return doc


def load_node_params(path: str | Path, node_name: str, *, namespace: str = "/") -> dict[str, Any]:
    """Flat parameter dict of ``node_name`` from a ROS 2 parameters file.

    As in rcl, a wildcard section (``/**``) applies first and the node's own section overrides it. The
    node's section may be keyed ``mil_sim``, ``/mil_sim`` or, for a namespaced node, ``/ns/mil_sim`` or
    ``/ns: {mil_sim: ...}``. Raises ParamsFileError when neither the node nor a wildcard is present.
    """
    path = Path(path)
    doc = read_params_file(path)
    base = node_name.strip("/").split("/")[-1]
    if not base:
        raise ParamsFileError(f"empty node name {node_name!r}")
    ns = _normalise(namespace) if namespace.strip("/") else ""
    full = f"{ns}/{base}"
    params: dict[str, Any] = {}
    found = False
    for key in WILDCARDS:
        if key in doc:
            params.update(_section_params(path, key, doc[key]))
            found = True
    for key, section in doc.items():
        if not isinstance(key, str) or key in WILDCARDS:
            continue
        if _normalise(key) == full:
            params.update(_section_params(path, key, section))
            found = True
        elif ns and _normalise(key) == ns and isinstance(section, Mapping) and base in section:
            params.update(_section_params(path, f"{key}/{base}", section[base]))
            found = True
    if not found:
        sections = ", ".join(repr(k) for k in doc)
        raise ParamsFileError(f"parameters file {path} has no section for node {full!r} (sections: {sections})")
    return params


def to_parameter_overrides(params: Mapping[str, Any]) -> list[Any]:
    """rclpy ``Parameter`` objects for ``Node(..., parameter_overrides=...)``.

    rclpy is imported here, not at module level, so the YAML reading stays usable (and testable)
    without a ROS installation.
    """
    from rclpy.parameter import Parameter

    out = []
    for name, value in params.items():
        try:
            out.append(Parameter(name, value=_check_value(name, value, "override")))
        except TypeError as e:
            raise ParamsFileError(f"parameter {name!r}: {e}") from None
    return out


def node_overrides(path: str | Path, node_name: str, *, namespace: str = "/") -> list[Any]:
    """Shortcut: the ``parameter_overrides`` list for one node of a parameters file."""
    return to_parameter_overrides(load_node_params(path, node_name, namespace=namespace))
