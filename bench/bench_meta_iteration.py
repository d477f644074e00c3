"""Meta-iterations per second of MIL, vmap vs loop path, plus test-time adaptation and policy latency.

    ./mil run python bench/bench_meta_iteration.py [--config config/train_placing_paper.yaml ...]
        [--device cpu cuda] [--iters 3] [--warmup 1] [--json bench.json] [--quick]

Why: the trainer picks the vmap path on GPU and the loop path on CPU (``train.vectorized: null``), a
choice that only measurements on the actual machine can justify, and the policy node has a latency
budget per control step. So each configuration is measured on each device, both paths in the same run
(same process, same synthetic data), on tensors with the shapes the config trains on: meta_batch tasks,
``shots`` adaptation demos and one evaluation demo per task, ``frames_per_demo`` (or ``horizon``) frames.
A meta-iteration is what the trainer does per step: loss, backward, meta-gradient clip, Adam step.

Also measured: one-demo adaptation (``MilMethod.adapt`` on a full-horizon demo, the configured inner
steps) and the latency of ``ConditionedPolicy.act`` (p50 / p99 over many calls). Timings on a shared
machine are noisy: the JSON records the medians and every sample.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mil_policy.config import MilConfig
from mil_policy.maml import DemoBatch
from mil_policy.methods import MilMethod

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = (ROOT / "config" / "train_placing_paper.yaml", ROOT / "config" / "train_placing_cpu.yaml")


def synthetic_batch(
    config: MilConfig, tasks: int, demos: int, frames: int, device: str, generator: torch.Generator
) -> DemoBatch:
    """Random demos with the config's image / state / action sizes: (tasks, demos, frames, ...)."""
    net = config.network
    shape = (tasks, demos, frames)

    def rand(*s: int) -> torch.Tensor:
        return torch.rand(*s, generator=generator).to(device)

    targets = rand(tasks, demos, net.target_dim) if net.predict_target else None
    return DemoBatch(
        images=rand(*shape, net.image_channels, net.image_height, net.image_width),
        states=rand(*shape, net.state_dim),
        actions=rand(*shape, net.action_dim) * 2 - 1,
        targets=targets,
    )


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn: Callable[[], object], repeats: int, warmup: int, device: str) -> list[float]:
    """Seconds per call, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        samples.append(time.perf_counter() - t0)
    return samples


def bench_meta_iteration(
    config: MilConfig, device: str, vectorized: bool, iters: int, warmup: int, seed: int = 0
) -> dict[str, Any]:
    torch.manual_seed(seed)
    method = MilMethod(config)
    method.module.to(device)
    method.vectorized = vectorized
    opt = torch.optim.Adam(method.module.parameters(), lr=config.maml.meta_lr)
    g = torch.Generator().manual_seed(seed)
    frames = config.data.frames_per_demo or config.data.horizon
    batch_a = synthetic_batch(config, config.maml.meta_batch, config.maml.shots, frames, device, g)
    batch_b = synthetic_batch(config, config.maml.meta_batch, 1, frames, device, g)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = method.training_loss(batch_a, batch_b)
        loss.backward()
        method.after_backward()
        opt.step()

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    samples = _timed(step, iters, warmup, device)
    median = statistics.median(samples)
    out: dict[str, Any] = {"s_per_iter": median, "iters_per_s": 1.0 / median, "samples_s": samples}
    if device.startswith("cuda"):
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def bench_test_time(
    config: MilConfig, device: str, adapt_repeats: int, act_steps: int, seed: int = 0
) -> dict[str, Any]:
    """One-demo adaptation (full horizon) and per-step latency of the adapted policy."""
    torch.manual_seed(seed)
    method = MilMethod(config)
    method.module.to(device)
    g = torch.Generator().manual_seed(seed)
    demo = synthetic_batch(config, 1, 1, config.data.horizon, device, g).task(0)
    adapt = _timed(lambda: method.adapt(demo), adapt_repeats, 1, device)
    policy = method.condition(demo)
    policy.reset()
    net = config.network
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (net.image_height, net.image_width, 3), dtype=np.uint8)
    state = rng.standard_normal(net.state_dim).astype(np.float32)
    latencies = _timed(lambda: policy.act(image, state), act_steps, 3, device)
    ms = np.asarray(latencies) * 1e3
    return {
        "adapt_s": statistics.median(adapt),
        "adapt_samples_s": adapt,
        "inner_steps": config.maml.inner_steps,
        "act_p50_ms": float(np.percentile(ms, 50)),
        "act_p99_ms": float(np.percentile(ms, 99)),
        "act_steps": act_steps,
    }


def _max_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def machine_info(devices: list[str]) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    if any(d.startswith("cuda") for d in devices):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def format_table(rows: list[dict[str, Any]]) -> str:
    header = ("config", "device", "path", "s/iter", "iter/s", "adapt s", "act p50 ms", "act p99 ms")
    body = []
    for r in rows:
        body.append(
            (
                r["config"],
                r["device"],
                r["path"],
                f"{r['s_per_iter']:.3f}",
                f"{r['iters_per_s']:.3f}",
                f"{r['adapt_s']:.3f}",
                f"{r['act_p50_ms']:.2f}",
                f"{r['act_p99_ms']:.2f}",
            )
        )
    widths = [max(len(x) for x in col) for col in zip(header, *body, strict=True)]

    def line(row: tuple[str, ...]) -> str:  # numbers right-aligned
        cells = zip(row, widths, strict=True)
        return "  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(cells))

    lines = [line(row) for row in (header, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--config",
        nargs="+",
        type=Path,
        default=list(DEFAULT_CONFIGS),
        help="training config YAMLs (default: placing paper and cpu presets)",
    )
    p.add_argument("--device", nargs="+", default=None, help="devices (default: cpu, and cuda when available)")
    p.add_argument("--paths", nargs="+", choices=["vmap", "loop"], default=["vmap", "loop"])
    p.add_argument("--iters", type=int, default=3, help="timed meta-iterations per path")
    p.add_argument("--warmup", type=int, default=1, help="untimed meta-iterations first")
    p.add_argument("--adapt-repeats", type=int, default=5)
    p.add_argument("--act-steps", type=int, default=200, help="policy steps for the latency percentiles")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument(
        "--meta-batch",
        type=int,
        default=None,
        help="override maml.meta_batch (second-order MAML holds every task's graph at once: "
        "memory and time grow about linearly with it)",
    )
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 iteration, no warm-up, few policy steps")
    args = p.parse_args(argv)
    if args.quick:
        args.iters, args.warmup, args.adapt_repeats, args.act_steps = 1, 0, 1, 10
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    for d in devices:
        if d.startswith("cuda") and not torch.cuda.is_available():
            p.error(f"device {d}: torch sees no CUDA device")
    rows = []
    for path in args.config:
        config = MilConfig.load(path)
        if args.meta_batch:
            config.maml.meta_batch = args.meta_batch
        for device in devices:
            test_time = bench_test_time(config, device, args.adapt_repeats, args.act_steps)
            for mode in args.paths:
                r = bench_meta_iteration(config, device, mode == "vmap", args.iters, args.warmup)
                row = {
                    "config": path.name,
                    "device": device,
                    "path": mode,
                    **r,
                    **test_time,
                    "meta_batch": config.maml.meta_batch,
                    "shots": config.maml.shots,
                    "frames": config.data.frames_per_demo or config.data.horizon,
                    "max_rss_gib_so_far": _max_rss_gib(),
                }
                rows.append(row)
                print(f"{path.name} {device} {mode}: {r['s_per_iter']:.3f} s/iter", file=sys.stderr, flush=True)
    print(format_table(rows))
    if args.json:
        doc = {
            "machine": machine_info(devices),
            "quick": args.quick,
            "iters": args.iters,
            "warmup": args.warmup,
            "results": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
