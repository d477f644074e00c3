"""launch/place.launch.py (real ROS) and the pip-mode bringup start the same nodes with the same YAML."""

from __future__ import annotations

import ast
from pathlib import Path

from mil_policy.bringup import NODES, config_dir, node_defaults

ROOT = Path(__file__).resolve().parents[3]


def _launch_nodes() -> list[dict[str, object]]:
    tree = ast.parse((ROOT / "launch" / "place.launch.py").read_text())
    nodes = []
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "Node":
            kw = {k.arg: k.value for k in call.keywords}
            files = [
                c.args[0].elts[-1].value
                for c in ast.walk(kw["parameters"])
                if isinstance(c, ast.Call)
                and getattr(c.func, "id", "") == "PathJoinSubstitution"
                and isinstance(c.args[0], ast.List)
                and isinstance(c.args[0].elts[-1], ast.Constant)
            ]
            nodes.append(
                {
                    "package": ast.literal_eval(kw["package"]),
                    "executable": ast.literal_eval(kw["executable"]),
                    "name": ast.literal_eval(kw["name"]),
                    "params_files": files,
                    "conditional": "condition" in kw,
                }
            )
    return nodes


def test_same_executables_names_and_parameter_files() -> None:
    launched = _launch_nodes()
    assert [(n["package"], n["executable"], n["name"]) for n in launched] == [
        (s.package, s.executable, s.name) for s in NODES
    ]
    for node, spec in zip(launched, NODES, strict=True):
        assert node["params_files"] == [spec.params_file]
        assert node["conditional"] == spec.sim_only  # only the sim is optional (use_sim:=false)


def test_every_node_yaml_loads_and_executables_are_installed() -> None:
    import ast as _ast

    for spec in NODES:
        assert (config_dir() / spec.params_file).is_file()
        assert node_defaults(spec), f"{spec.params_file} has no parameters for {spec.name}"
        setup = (ROOT / "src" / spec.package / "setup.py").read_text()
        scripts = _ast.literal_eval(
            setup[setup.index("entry_points=") + len("entry_points=") : setup.rindex(")")].rsplit(",", 1)[0]
        )["console_scripts"]
        assert any(s.split("=")[0].strip() == spec.executable for s in scripts)


def test_sim_launch_arguments_default_to_sim_yaml() -> None:
    """sim.launch.py's arguments only override sim.yaml when given: none repeats a default of its own."""
    import yaml

    source = (ROOT / "launch" / "sim.launch.py").read_text()
    tree = ast.parse(source)
    (table,) = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "OVERRIDABLE"
    ]
    names = ast.literal_eval(table)
    params = yaml.safe_load((config_dir() / "sim.yaml").read_text())["mil_sim"]["ros__parameters"]
    assert names and set(names) <= set(params), "every argument names a sim.yaml parameter"
    defaults = [
        k.value
        for c in ast.walk(tree)
        if isinstance(c, ast.Call) and getattr(c.func, "id", "") == "DeclareLaunchArgument"
        for k in c.keywords
        if k.arg == "default_value"
    ]
    assert defaults and all(isinstance(d, ast.Constant) and d.value == "" for d in defaults)
