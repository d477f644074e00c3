"""Why does a MIL checkpoint fail? Offline checks on held-out demos, no simulator needed.

Several failure modes of one-shot imitation look alike in a success table (the policy does not reach the
target) but differ in these numbers:

* **The demonstration is ignored.** The per-frame imitation error after adapting on the task's own demo
  equals the error after adapting on another task's demo: the policy has learned only what all tasks
  share. (Training logs the same comparison as ``val_other_demo``.)
* **A shortcut.** The error is at the noise floor on most frames and large only on the few frames where
  the task decides the action (e.g. the first steps of a reach, when a state with joint velocities has
  not yet revealed where the arm is heading): the policy copies the ongoing motion.
* **Blind features.** The spatial soft-argmax of each channel is barely more peaked than uniform, so
  the feature points sit near the image centre whatever the scene: nothing can be localised.
* **An imprecise target.** For networks with a target head (``predict_target``): the distance between
  the predicted and the demonstrated target position. Far from the demo's own target yet nearer to it
  than with another task's demo, the policy picks the right object but drives to an imprecise
  position (e.g. a soft-argmax spread over several objects) and ends outside the success radius.
* **A bias jump instead of a template.** Also for target heads: the estimate before any adaptation, and
  after adapting on a demo, on that same demo's first frame. A step that fits the demo's own target but
  not the new scene's has learned nothing that transfers; an unadapted estimate far off (metres) with a
  clipped inner gradient means the step is a fixed correction (sign-like under clipping), the same for
  every task, that training leans on instead of the features.
* **Dead units.** Hidden FC units that are never positive on any evaluated frame: under ReLU they get
  no gradient and stay off for good (a phase of demo-ignoring training switches many off).

``diagnose --checkpoint RUN/best --demos DIR`` prints each check (and writes them as JSON with
``--json``); the demos are read through the training cache, split as training split them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.func import functional_call

from mil_policy.checkpoint import CheckpointError, load_into, read_checkpoint
from mil_policy.config import ConfigError
from mil_policy.dataset import DatasetError, MetaBatchSampler, check_compatible, load_dataset, other_task_demos
from mil_policy.maml import parameters_of
from mil_policy.methods import MilMethod, build_method
from mil_policy.network import PolicyNetwork


@dataclass
class Diagnosis:
    """Per-frame means over the sampled held-out tasks (frame index = demo step after subsampling)."""

    tasks: int  # adaptation/evaluation pairs averaged
    error_own_demo: list[float]  # squared action error per frame, adapted on the task's own demo
    error_other_demo: list[float]  # the same evaluation demos, adapted on another task's demo
    predicted_action_size: list[float]  # mean |action| of the adapted policy
    expert_action_size: list[float]  # mean |action| of the demonstrations
    softmax_peak: list[float] | None  # per channel: mean max probability of the spatial softmax
    softmax_uniform: float | None  # 1 / (map height x width): the peak of a flat softmax
    inactive_units: list[int]  # per hidden FC layer: units never positive in any forward pass made here
    fc_widths: list[int]  # units per hidden FC layer
    target_error_own_demo: float | None = None  # mean distance predicted-to-demonstrated target (m)
    target_error_other_demo: float | None = None  # the same, adapted on another task's demo
    target_error_unadapted: float | None = None  # the same evaluation demos, before any adaptation
    target_error_demo_fit: float | None = None  # adapted on a demo, on that demo's own first frame


def diagnose(method: MilMethod, sampler: MetaBatchSampler, batches: int) -> Diagnosis:
    """Adapt on each task's demo and on another task's, and compare per-frame errors on a third demo."""
    if sampler.meta_batch < 2:
        raise DatasetError("diagnosis needs at least 2 tasks per meta-batch (one to lend the other its demo)")
    net, learner = method.module, method.learner
    net.eval()
    params = parameters_of(net)
    own, other, pred_size, expert_size, first_frames = [], [], [], [], []
    own_target, other_target = [], []  # per task: mean predicted-to-demonstrated target distance
    unadapted_target, fit_target = [], []
    ever_positive = [torch.zeros(fc.out_features, dtype=torch.bool) for fc in net.fcs]

    def record(layer: int):
        def hook(_module: torch.nn.Module, _inputs: object, out: torch.Tensor) -> None:
            ever_positive[layer] |= (out.detach() > 0).flatten(0, -2).any(0).cpu()

        return hook

    hooks = [fc.register_forward_hook(record(k)) for k, fc in enumerate(net.fcs)]
    try:
        for _ in range(batches):
            idx = sampler.sample_indices()
            batch_a, batch_b = sampler.load(idx)
            other_a = sampler.load_adaptation(other_task_demos(idx, sampler.shots))  # as validation pairs them
            for i in range(batch_a.images.shape[0]):
                demo_b = batch_b.task(i)
                pairs = ((own, own_target, batch_a.task(i)), (other, other_target, other_a.task(i)))
                for errors, target_errors, demo_a in pairs:
                    adapted = learner.adapt(params, demo_a, create_graph=False)
                    with torch.no_grad():
                        out = functional_call(net, adapted, (demo_b.images, demo_b.states))
                    actions = out.actions
                    errors.append((actions - demo_b.actions).pow(2).mean(-1).mean(0))
                    if out.target is not None and demo_b.targets is not None:
                        target_errors.append((out.target - demo_b.targets).norm(dim=-1).mean())
                    if errors is own:
                        pred_size.append(actions.abs().mean(-1).mean(0))
                        expert_size.append(demo_b.actions.abs().mean(-1).mean(0))
                        if out.target is not None and demo_b.targets is not None:
                            with torch.no_grad():
                                before = learner.first_frame_output(params, demo_b).target
                                fit = learner.first_frame_output(adapted, demo_a).target
                            unadapted_target.append((before - demo_b.targets).norm(dim=-1).mean())
                            fit_target.append((fit - demo_a.targets).norm(dim=-1).mean())
                first_frames.append(demo_b.images[:, 0])
    finally:
        for h in hooks:
            h.remove()
    peaks, uniform = softmax_peaks(net, torch.cat(first_frames))
    inactive = [int((~seen).sum()) for seen in ever_positive]

    def mean(rows: list[torch.Tensor]) -> list[float]:
        return [round(float(v), 6) for v in torch.stack(rows).mean(0)]

    def mean_distance(rows: list[torch.Tensor]) -> float | None:
        return round(float(torch.stack(rows).mean()), 5) if rows else None

    widths = [fc.out_features for fc in net.fcs]
    return Diagnosis(
        len(own),
        mean(own),
        mean(other),
        mean(pred_size),
        mean(expert_size),
        peaks,
        uniform,
        inactive,
        widths,
        mean_distance(own_target),
        mean_distance(other_target),
        mean_distance(unadapted_target),
        mean_distance(fit_target),
    )


@torch.no_grad()
def softmax_peaks(net: PolicyNetwork, images: torch.Tensor) -> tuple[list[float] | None, float | None]:
    """Mean over ``images`` (N, C, H, W) of each channel's largest spatial-softmax probability."""
    if not net.config.spatial_softmax:
        return None, None
    maps = net.feature_maps(images)
    peaks = net.soft_argmax.probabilities(maps).flatten(2).amax(-1).mean(0)
    h, w = maps.shape[-2:]
    return [round(float(p), 4) for p in peaks], round(1.0 / (h * w), 5)


def format_report(d: Diagnosis, every: int = 5) -> str:
    lines = [
        f"{d.tasks} held-out evaluation demos; squared action error per frame (mean over action dims)",
        "frames    own demo  other demo  |policy|  |expert|",
    ]
    t = len(d.error_own_demo)
    for start in range(0, t, every):
        sl = slice(start, min(start + every, t))

        def avg(v: list[float], s: slice = sl) -> float:
            return float(np.mean(v[s]))

        lines.append(
            f"{start:>3}-{sl.stop - 1:<3}  {avg(d.error_own_demo):>9.4f}  {avg(d.error_other_demo):>10.4f}"
            f"  {avg(d.predicted_action_size):>8.3f}  {avg(d.expert_action_size):>8.3f}"
        )
    gap = 1.0 - float(np.mean(d.error_own_demo)) / max(float(np.mean(d.error_other_demo)), 1e-12)
    lines.append(f"own demo lowers the error by {100 * gap:.1f}% against another task's demo (0%: demo ignored)")
    if d.target_error_own_demo is not None and d.target_error_other_demo is not None:
        lines.append(
            f"target position error: {100 * d.target_error_own_demo:.1f} cm adapted on the own demo, "
            f"{100 * d.target_error_other_demo:.1f} cm on another task's demo"
        )
    if d.target_error_unadapted is not None and d.target_error_demo_fit is not None:
        line = (
            f"  before adaptation {100 * d.target_error_unadapted:.1f} cm; on the adaptation demo itself, after "
            f"adapting, {100 * d.target_error_demo_fit:.1f} cm"
        )
        own, other = d.target_error_own_demo, d.target_error_other_demo
        if own is not None and other is not None and d.target_error_demo_fit < 0.8 * own and own > 0.9 * other:
            line += " (fits the demo but not the new scene: nothing transfers)"
        lines.append(line)
    if d.softmax_peak is not None:
        peaks = np.asarray(d.softmax_peak)
        lines.append(
            f"spatial softmax peak per channel: median {np.median(peaks):.4f}, max {peaks.max():.4f} "
            f"(flat: {d.softmax_uniform:.4f}; a peak near flat means the feature points localise nothing)"
        )
    if d.fc_widths:
        layers = ", ".join(f"{n} of {w}" for n, w in zip(d.inactive_units, d.fc_widths, strict=True))
        lines.append(f"hidden FC units never positive on these frames, per layer: {layers} (dead, under ReLU)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diagnose", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="MIL checkpoint directory (model.safetensors + config.json)")
    p.add_argument("--demos", required=True, help="demo directory the checkpoint's config can read (generate_demos)")
    p.add_argument("--split", choices=["val", "train"], default="val", help="tasks to diagnose on (default val)")
    p.add_argument("--batches", type=int, default=4, help="meta-batches of tasks to average (default 4)")
    p.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        state, config, _ = read_checkpoint(args.checkpoint)
        method = build_method(config)
        if not isinstance(method, MilMethod):
            raise ConfigError(f"diagnose needs a MIL checkpoint; {args.checkpoint} is method {config.method!r}")
        load_into(method.module, state, source=f"checkpoint {args.checkpoint}")
        if args.batches < 1:
            raise DatasetError("--batches must be >= 1")
        dataset = load_dataset(args.demos, config.data)
        check_compatible(dataset, config.network)
        split = dataset.split_tasks(config.data.val_fraction, config.train.seed)
        tasks = split.val if args.split == "val" else split.train
        sampler = MetaBatchSampler(
            dataset, tasks, min(config.maml.meta_batch, len(tasks)), shots=config.maml.shots, seed=args.seed
        )
        result = diagnose(method, sampler, args.batches)
    except (CheckpointError, ConfigError, DatasetError) as exc:
        print(f"diagnose: error: {exc}", file=sys.stderr)
        return 2
    print_and_save(format_report(result), result, args.json)
    return 0


def print_and_save(report: str, result: Any, json_path: Path | None) -> None:
    """What the offline checks (``diagnose``, ``probe_localisation``) end with: the report on stdout and,
    where asked, the result dataclass as JSON, so scripts need not parse the table."""
    print(report)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(asdict(result), indent=1))


if __name__ == "__main__":
    sys.exit(main())
