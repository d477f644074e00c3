"""Throughput of the demo recorder: camera frames and state messages received vs written, and drops.

    ./mil run python bench/bench_recorder.py [--seconds 10] [--image-hz 30] [--state-hz 100]
        [--image sim|noise] [--sensor-noise 3] [--no-compress] [--json runs/bench_recorder.json] [--quick]

Why: a teleop demo is only as good as its slowest stream, and the recorder shares the machine with the
camera driver, the bridge and the VR stack. This runs the real node (in this process, its own DDS
participant) against a publisher in a separate process that sends, for ``--seconds``, 320x240 ``rgb8``
images at ``--image-hz`` (the PR2 head camera's 30 Hz) and pose, twist and joint states at
``--state-hz`` (100 Hz), then reports per topic: published, received by the recorder, written to the
bag, dropped in transport (DDS sequence gaps) and by the recorder's queue, the rate, the bag size and
write throughput, and the recorder's CPU time. ``--image sim`` sends a rendered placing scene (what
zstd compresses about 10x), ``noise`` an incompressible worst case. Not a timed test: numbers from a
shared machine are noisy, and the JSON keeps them all.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_TOPIC = "/head_mount_kinect/rgb/image_raw"
STATE_TOPICS = {
    "pose": "/r_gripper_tool_frame/pose",
    "command": "/ee_cmd_vel",
    "joint_states": "/joint_states",
}


def camera_image(kind: str) -> np.ndarray:
    """One 320x240 RGB frame: a rendered placing scene, or uniform noise."""
    if kind == "noise":
        return np.random.default_rng(0).integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    from mil_sim.families import get_family

    family = get_family("placing")
    env = family.make_env(family.task("placing/train/0"), trial_seed=0, render=False)
    try:
        env.reset()
        return env.render_camera()
    finally:
        env.close()


def publisher_main(
    domain_id: int,
    image: np.ndarray | None,
    seconds: float,
    image_hz: float,
    state_hz: float,
    sensor_noise: float,
    go: Any,
    ready: Any,
    result: Any,
) -> None:
    """Child process: wait for the recorder's subscriptions, then publish at the given rates.

    Every frame differs (``image`` None: fresh uniform noise; else ``image`` plus Gaussian sensor noise
    of std ``sensor_noise``, or ``image`` with a moving bright bar when that is 0), so the compressor
    cannot just match the previous identical frame.
    """
    import rclpy
    from geometry_msgs.msg import PoseStamped, TwistStamped
    from sensor_msgs.msg import Image, JointState

    from mil_sim.image_msgs import fill_msg

    rclpy.init(domain_id=domain_id)
    node = rclpy.create_node("bench_teleop")
    pubs = {
        "image": node.create_publisher(Image, IMAGE_TOPIC, 10),
        "pose": node.create_publisher(PoseStamped, STATE_TOPICS["pose"], 100),
        "command": node.create_publisher(TwistStamped, STATE_TOPICS["command"], 100),
        "joint_states": node.create_publisher(JointState, STATE_TOPICS["joint_states"], 100),
    }
    end = time.monotonic() + 30.0
    while time.monotonic() < end and not all(p.get_subscription_count() for p in pubs.values()):
        time.sleep(0.05)
    ready.set()
    go.wait(30.0)
    rng = np.random.default_rng(1)
    img = Image()
    js = JointState(name=[f"j{i}" for i in range(8)], position=[0.1] * 8, velocity=[0.0] * 8)
    msgs = {"image": img, "pose": PoseStamped(), "command": TwistStamped(), "joint_states": js}
    periods = {"image": 1.0 / image_hz, **dict.fromkeys(STATE_TOPICS, 1.0 / state_hz)}
    counts = dict.fromkeys(pubs, 0)
    start = time.monotonic()
    due = dict.fromkeys(pubs, start)
    while (now := time.monotonic()) < start + seconds:
        for key, t in due.items():
            if now >= t:
                if key == "image":
                    fill_msg(img, frame(image, counts["image"], sensor_noise, rng), "rgb8", as_bytes=True)
                msg = msgs[key]
                msg.header.stamp = node.get_clock().now().to_msg()
                pubs[key].publish(msg)
                counts[key] += 1
                due[key] = t + periods[key]
        time.sleep(max(0.0, min(due.values()) - time.monotonic()))
    time.sleep(0.5)  # let the last messages arrive before the recorder stops
    result.put(counts)
    node.destroy_node()
    rclpy.shutdown()


def frame(image: np.ndarray | None, k: int, sensor_noise: float, rng: np.random.Generator) -> np.ndarray:
    if image is None:
        return rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    if sensor_noise > 0:
        return np.clip(image + rng.normal(0.0, sensor_noise, image.shape), 0, 255).astype(np.uint8)
    out = image.copy()
    x = (4 * k) % (image.shape[1] - 8)
    out[:, x : x + 8] = 255 - out[:, x : x + 8]  # a moving bar: the arm moves, the rest of the scene not
    return out


def run(
    seconds: float,
    image_hz: float,
    state_hz: float,
    image_kind: str,
    compress: bool,
    keep: Path | None,
    sensor_noise: float = 0.0,
) -> dict[str, Any]:
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from mil_demo_recorder.recorder_node import RecorderNode

    domain_id = 150 + os.getpid() % 80
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    image = None if image_kind == "noise" else camera_image(image_kind)
    root = Path(tempfile.mkdtemp(prefix="bench_recorder_"))
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    params = {
        "dataset_dir": str(root),
        "task_id": "placing/train/0",
        "compress": compress,
        "gripper_topic": "",
        "joy_topic": "",
    }
    node = RecorderNode(context=ctx, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    executor = MultiThreadedExecutor(num_threads=2, context=ctx)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    spawn = mp.get_context("spawn")
    go, ready, result = spawn.Event(), spawn.Event(), spawn.Queue()
    child = spawn.Process(
        target=publisher_main,
        args=(domain_id, image, seconds, image_hz, state_hz, sensor_noise, go, ready, result),
    )
    child.start()
    try:
        if not ready.wait(60.0):
            raise RuntimeError("publisher did not start")
        time.sleep(0.5)
        ok, text = node.start_demo()
        if not ok:
            raise RuntimeError(text)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.monotonic()
        go.set()
        published = result.get(timeout=seconds + 60)
        ok, text = node.stop_demo()
        wall = time.monotonic() - wall0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        child.join(timeout=10)
    finally:
        if child.is_alive():
            child.kill()
        executor.shutdown()
        spin.join(timeout=5)
        node.destroy_node()
        rclpy.shutdown(context=ctx)
    bag = root / node._last_result["path"]
    from mil_sim.demo_bag import read_task_metadata

    stats = read_task_metadata(bag)["stats"]
    size = sum(f.stat().st_size for f in bag.iterdir())
    layout = {
        "image": "/camera/image_raw",
        "pose": "/ee_pose",
        "command": "/ee_cmd_vel",
        "joint_states": "/joint_states",
    }
    rows = []
    for key, topic in layout.items():
        t = stats["topics"][topic]
        rows.append(
            {
                "topic": topic,
                "published": published[key],
                "received": t["received"],
                "written": t["written"],
                "dropped_transport": t["dropped_transport"],
                "dropped_queue": t["dropped_queue"],
                "missing": published[key] - t["received"],
                "rate_hz": t["rate_hz"],
            }
        )
    raw_bytes = published["image"] * 240 * 320 * 3
    out = {
        "seconds": seconds,
        "image_hz": image_hz,
        "state_hz": state_hz,
        "image": image_kind,
        "compress": compress,
        "sensor_noise": sensor_noise,
        "rows": rows,
        "bag_bytes": size,
        "image_bytes_published": raw_bytes,
        "compression_ratio": round(raw_bytes / size, 2) if size else None,
        "write_mb_per_s": round(raw_bytes / 1e6 / wall, 2),
        "recorder_cpu_s": round((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime), 2),
        "wall_s": round(wall, 2),
        "warnings": stats["warnings"],
        "image_pose_sync_ms": stats["image_pose_sync_ms"],
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        },
    }
    if keep is not None:
        shutil.copytree(bag, keep / bag.name, dirs_exist_ok=True)
    shutil.rmtree(root, ignore_errors=True)
    return out


def format_table(result: dict[str, Any]) -> str:
    head = (
        f"{'topic':<20} {'published':>9} {'received':>8} {'written':>7} {'missing':>7} {'drop dds':>8} "
        f"{'drop queue':>10} {'rate Hz':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(
            f"{r['topic']:<20} {r['published']:>9} {r['received']:>8} {r['written']:>7} {r['missing']:>7} "
            f"{r['dropped_transport']:>8} {r['dropped_queue']:>10} {r['rate_hz']:>8.2f}"
        )
    lines.append(
        f"{result['seconds']:g} s, {result['image']} images (sensor noise {result['sensor_noise']:g}), "
        f"compress={result['compress']}: bag "
        f"{result['bag_bytes'] / 1e6:.1f} MB ({result['compression_ratio']}x smaller than the raw frames), "
        f"{result['write_mb_per_s']} MB/s of frames, recorder CPU {result['recorder_cpu_s']} s over "
        f"{result['wall_s']} s, load avg {result['machine']['load_avg'][0]}"
    )
    for w in result["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--image-hz", type=float, default=30.0)
    p.add_argument("--state-hz", type=float, default=100.0)
    p.add_argument("--image", choices=("sim", "noise"), default="sim")
    p.add_argument("--sensor-noise", type=float, default=0.0, help="std of Gaussian noise on sim frames")
    p.add_argument("--no-compress", action="store_true")
    p.add_argument("--json", type=Path, default=Path("runs/bench_recorder.json"), help="where results go")
    p.add_argument("--keep-bag", type=Path, help="copy the recorded bag here")
    p.add_argument("--quick", action="store_true", help="2 s at 10/30 Hz (a smoke run for the tests)")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.image_hz, args.state_hz = 2.0, 10.0, 30.0
    result = run(
        args.seconds,
        args.image_hz,
        args.state_hz,
        args.image,
        not args.no_compress,
        args.keep_bag,
        args.sensor_noise,
    )
    print(format_table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
