"""The main job without ROS launch: sim + bridge + policy in one process, with the launch file's YAML.

``launch/place.launch.py`` starts the same three nodes (``NODES`` below; a test compares the two) for a
real ROS 2 install. Here they run in one process (one executor thread per node), which is all a pip-only
machine has. After the
episode the gripper has opened (the policy does that at the end of its horizon); the sim then scores the
trial, and this command prints success, adaptation time and step latency, and writes a rollout video.

    mil-place                                 # embedded checkpoint + shipped held-out demo
    mil-place --checkpoint runs/x/best --demo-bag data/demos/placing/test/... --trial-seed 3
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CONFIG_ENV = "MIL_CONFIG_DIR"


@dataclass(frozen=True)
class NodeSpec:
    """One node of the bringup, as both the launch file and the pip-mode bringup start it."""

    package: str
    executable: str
    name: str
    params_file: str  # in config/
    sim_only: bool = False


NODES = (
    NodeSpec("mil_sim", "sim_node", "mil_sim", "sim.yaml", sim_only=True),
    NodeSpec("mil_pr2_bridge", "bridge_node", "mil_pr2_bridge", "bridge.yaml"),
    NodeSpec("mil_policy", "policy_node", "mil_policy", "policy.yaml"),
)


def config_dir() -> Path:
    """config/ of the source tree (pip editable install), else mil_policy's share (colcon install)."""
    import os

    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    repo = Path(__file__).resolve().parents[3] / "config"
    if (repo / "policy.yaml").is_file():
        return repo
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("mil_policy")) / "config"
    except (ImportError, LookupError):
        return repo


def node_defaults(spec: NodeSpec, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    from mil_sim.ros_params import load_node_params

    params = load_node_params(config_dir() / spec.params_file, spec.name)
    params.update(overrides or {})
    return params


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mil-place", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="", help="checkpoint directory ('' = the shipped default)")
    p.add_argument("--demo-bag", default="default", help="demo bag to adapt to ('default' = the shipped one)")
    p.add_argument("--demo-inputs", default="", help="full, no_actions or video_only ('' = the checkpoint's)")
    p.add_argument("--no-sim", action="store_true", help="do not start the sim (a real PR2 is connected)")
    p.add_argument(
        "--task-id", default="", help="sim task ('' = the demo's task; config/sim.yaml for the default demo)"
    )
    p.add_argument("--trial-seed", type=int, default=None, help="sim scene layout ('' = config/sim.yaml's)")
    p.add_argument("--video", default="runs/place/rollout.mp4", help="rollout video path ('' = none)")
    p.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from mil_policy.defaults import default_demo_bag
    from mil_policy.policy_node import PolicyNode
    from mil_pr2_bridge.bridge_node import BridgeNode
    from mil_sim.demo_bag import DemoBagError, read_task_metadata
    from mil_sim.image_msgs import msg_to_rgb
    from mil_sim.node_params import NodeConfigError
    from mil_sim.sim_client import SimClient
    from mil_sim.sim_node import SimNode

    demo_bag = str(default_demo_bag()) if args.demo_bag == "default" else args.demo_bag
    sim_overrides: dict[str, Any] = {}
    if args.task_id:
        sim_overrides["task_id"] = args.task_id
    elif args.demo_bag != "default" and not args.no_sim:
        try:  # one-shot: the sim runs the demo's task, in a new layout
            sim_overrides["task_id"] = str(read_task_metadata(demo_bag)["task_id"])
        except (DemoBagError, KeyError) as exc:
            print(f"mil-place: cannot read the demo's task: {exc}", file=sys.stderr)
            return 2
    if args.trial_seed is not None:
        sim_overrides["trial_seed"] = args.trial_seed
    policy_overrides = {
        "demo_bag": demo_bag,
        "checkpoint": args.checkpoint,
        "demo_inputs": args.demo_inputs,
        "auto_start": True,
    }
    rclpy.init()
    nodes: list[Node] = []
    executors: list[SingleThreadedExecutor] = []
    threads: list[threading.Thread] = []
    try:
        for spec in NODES:
            if spec.sim_only and args.no_sim:
                continue
            if spec.package == "mil_sim":
                nodes.append(SimNode(parameter_defaults=node_defaults(spec, sim_overrides)))
            elif spec.package == "mil_pr2_bridge":
                nodes.append(BridgeNode(parameter_defaults=node_defaults(spec)))
            else:
                policy = PolicyNode(parameter_defaults=node_defaults(spec, policy_overrides))
                nodes.append(policy)
        watcher = Node("mil_place_monitor")
        frames: list[np.ndarray] = []
        states: list[dict[str, Any]] = []
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        watcher.create_subscription(String, "/mil_policy/state", lambda m: states.append(json.loads(m.data)), latched)
        if args.video:
            watcher.create_subscription(
                Image, policy.params["image_topic"], lambda m: frames.append(msg_to_rgb(m)), qos_profile_sensor_data
            )
        for n in (*nodes, watcher):  # one executor thread per node: no node waits on another's callbacks
            executors.append(SingleThreadedExecutor())
            executors[-1].add_node(n)
            threads.append(threading.Thread(target=executors[-1].spin, daemon=True, name=f"spin_{n.get_name()}"))
            threads[-1].start()
        result = _run_episode(states, args.timeout, None if args.no_sim else SimClient())
    except (NodeConfigError, ValueError) as exc:
        print(f"mil-place: {exc}", file=sys.stderr)
        return 2
    finally:
        for ex in executors:
            ex.shutdown()
        for th in threads:  # no callback may still run while its node is destroyed
            th.join(timeout=5.0)
        for n in nodes:
            n.destroy_node()
        rclpy.try_shutdown()
    if args.video and frames:
        from mil_policy.video import write_rollout_video
        from mil_sim.demo_bag import read_episode

        demo_frames = list(read_episode(demo_bag).images)  # the demonstration beside the rollout
        fps = float(node_defaults(NODES[0]).get("camera_rate_hz", 10.0))
        print(f"rollout video (demo | rollout): {write_rollout_video(Path(args.video), frames, demo_frames, fps)}")
    print(json.dumps(result, indent=2))
    print(summary_line(result))
    return 0 if result.get("state") == "done" else 1


def summary_line(result: dict[str, Any]) -> str:
    """One line a person reads first: outcome, adaptation time, policy step latency."""
    if result.get("state") != "done":
        return f"one-shot placing did not finish: {result.get('state')}: {result.get('detail')}"
    outcome = {True: "SUCCESS (item in the target container)", False: "FAILURE (item not in the target)"}.get(
        result.get("success"), "not scored (no sim)"
    )
    distance = result.get("sim", {}).get("xy_distance_to_target")
    if distance is not None:
        outcome += f", {100 * distance:.1f} cm from its centre"
    return (
        f"one-shot placing: {outcome}; adaptation {1e3 * result['adapt_seconds']:.0f} ms; "
        f"policy step p50 {result.get('step_latency_p50_ms', float('nan')):.1f} ms, "
        f"p99 {result.get('step_latency_p99_ms', float('nan')):.1f} ms"
    )


def _run_episode(states: list[dict[str, Any]], timeout: float, sim: Any) -> dict[str, Any]:
    """Wait until the policy is done (or faults), then let the sim open the gripper, settle and score."""
    deadline = time.monotonic() + timeout
    while not (states and states[-1]["state"] in ("done", "fault")):
        if time.monotonic() > deadline:
            last = states[-1] if states else None
            return {"state": "timeout", "detail": f"no result within {timeout:g} s (last state: {last})"}
        time.sleep(0.05)
    result = dict(states[-1])
    if sim is not None:
        time.sleep(0.3)  # the gripper-open command travels policy -> bridge -> sim
        sim.end_episode()
        result.update(score_from_sim(sim.success()))
        sim.close()
    return result


def score_from_sim(response: Any) -> dict[str, Any]:
    """The sim's ``~/success`` answer (std_srvs/Trigger) as the result's ``success`` and ``sim`` fields.

    The verdict is the response's ``success`` flag; the message holds the JSON details (distance, item
    position, ...). Reading the verdict from the details instead once made every trial print FAILURE.
    """
    return {"success": bool(response.success), "sim": json.loads(response.message)}


if __name__ == "__main__":
    sys.exit(main())
