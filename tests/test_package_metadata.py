"""Every src/ package is a valid ament_python package that `colcon build` and `ros2 run` accept.

colcon is not installable from these registries' ROS wheels, so this checks what colcon's ament_python
build reads: package.xml (format 3), setup.cfg script dirs (where `ros2 run` looks for executables),
the ament index resource marker, and that each console-script entry point imports.
"""

from __future__ import annotations

import ast
import configparser
import importlib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mil_policy", "mil_demo_recorder", "mil_sim", "mil_pr2_bridge")
# ROS packages the wheels in requirements.txt provide, plus our own packages.
KNOWN_ROS_DEPS = {
    "rclpy",
    "std_msgs",
    "std_srvs",
    "sensor_msgs",
    "geometry_msgs",
    "trajectory_msgs",
    "rosgraph_msgs",
    *PACKAGES,
}


def _setup_call(pkg: str) -> ast.Call:
    tree = ast.parse((ROOT / "src" / pkg / "setup.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup"]
    assert len(calls) == 1, f"{pkg}/setup.py must call setup() once"
    return calls[0]


def _keyword(call: ast.Call, name: str) -> ast.expr:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    raise AssertionError(f"setup() has no {name}=")


@pytest.mark.parametrize("pkg", PACKAGES)
def test_package_xml_is_format_3_ament_python(pkg: str) -> None:
    root = ET.parse(ROOT / "src" / pkg / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == pkg
    for tag in ("version", "description", "maintainer", "license"):
        assert (root.findtext(tag) or "").strip(), f"{pkg}: <{tag}> is empty"
    assert root.find("maintainer").get("email")
    assert root.findtext("export/build_type") == "ament_python"
    deps = {e.text for e in root if e.tag in ("depend", "exec_depend", "build_depend")}
    assert "rclpy" in deps
    ros_deps = {d for d in deps if not d.startswith("python3-")}
    assert ros_deps <= KNOWN_ROS_DEPS, f"{pkg}: unknown ROS dependencies {ros_deps - KNOWN_ROS_DEPS}"


@pytest.mark.parametrize("pkg", PACKAGES)
def test_setup_cfg_puts_executables_where_ros2_run_looks(pkg: str) -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "src" / pkg / "setup.cfg")
    assert cfg["develop"]["script_dir"] == f"$base/lib/{pkg}"
    assert cfg["install"]["install_scripts"] == f"$base/lib/{pkg}"


@pytest.mark.parametrize("pkg", PACKAGES)
def test_resource_marker_and_data_files(pkg: str) -> None:
    assert (ROOT / "src" / pkg / "resource" / pkg).is_file()
    call = _setup_call(pkg)
    assert ast.unparse(_keyword(call, "name")) in (repr(pkg), "package_name")
    assigned = [
        n.value.value
        for n in ast.walk(ast.parse((ROOT / "src" / pkg / "setup.py").read_text()))
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "package_name"
    ]
    assert assigned == [pkg]
    data_files = ast.unparse(_keyword(call, "data_files"))
    assert "share/ament_index/resource_index/packages" in data_files
    assert "package.xml" in data_files


@pytest.mark.parametrize("pkg", PACKAGES)
def test_console_scripts_import(pkg: str) -> None:
    entry_points = ast.literal_eval(_keyword(_setup_call(pkg), "entry_points"))
    for spec in entry_points.get("console_scripts", []):
        name, target = (s.strip() for s in spec.split("="))
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), f"{pkg}: {name} -> {target}"


def test_launch_and_config_files_are_installed_by_mil_policy() -> None:
    data_files = ast.unparse(_keyword(_setup_call("mil_policy"), "data_files"))
    assert "config/*.yaml" in data_files and "launch/*.launch.py" in data_files
    assert list((ROOT / "config").glob("*.yaml")), "config/ has no YAML"
