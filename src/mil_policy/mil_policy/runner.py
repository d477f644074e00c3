"""One-shot policy runtime without ROS: load a checkpoint, adapt to one demo bag, act step by step.

The policy node is a thin ROS adapter around this class, and anything else that needs the adapted
policy (replay evaluation, notebooks) can use it directly. Demos are converted exactly as in training
and evaluation (``mil_policy.evaluate.demo_batch``), so a demo bag means the same thing everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mil_policy.checkpoint import load_into, read_checkpoint
from mil_policy.demo_arrays import DemoError, subsample_indices
from mil_policy.evaluate import check_compatible, demo_batch, strip_demo, with_demo_inputs
from mil_policy.maml import DemoBatch
from mil_policy.methods import ConditionedPolicy, build_method
from mil_sim.core import Episode
from mil_sim.demo_bag import read_episode
from mil_sim.families import get_family


class RunnerError(ValueError):
    """A demo or input the loaded policy cannot use; the message says what and why."""


@dataclass
class StepTimes:
    """Wall-clock seconds of each ``act`` call, for the latency report."""

    seconds: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.seconds, q)) if self.seconds else float("nan")


class PolicyRunner:
    """A meta-trained policy for one family; ``adapt`` on a demo, then ``act`` for ``horizon`` steps."""

    def __init__(self, checkpoint: str | Path, demo_inputs: str | None = None, device: str = "cpu") -> None:
        state, config, _ = read_checkpoint(checkpoint)
        self.config = with_demo_inputs(config, demo_inputs, source=str(checkpoint))
        self.demo_inputs = self.config.maml.demo_inputs
        self.family = get_family(self.config.data.family, **self.config.data.family_config)
        check_compatible(self.config, self.family, f"checkpoint {checkpoint}")
        self.method = build_method(self.config)
        load_into(self.method.module, state, source=f"checkpoint {checkpoint}")
        self.method.module.to(device).eval()
        self.device = device
        self.horizon = self.config.data.horizon
        # Control steps of the episode at which the policy acts (as in the demos it learned from).
        self.policy_steps = subsample_indices(self.family.episode_steps, self.horizon)
        self.policy: ConditionedPolicy | None = None
        self.adapt_seconds: float | None = None
        self.step_times = StepTimes()

    @property
    def policy_rate_hz(self) -> float:
        """Mean rate of policy steps over the episode (placing: 30 steps in 6 s = 5 Hz)."""
        return self.horizon * self.family.control_rate_hz / self.family.episode_steps

    def load_demo(self, bag: str | Path) -> DemoBatch:
        """Read a demo bag and turn it into the network's input; RunnerError if it cannot be used."""
        episode = read_episode(bag)  # DemoBagError (a ValueError) for missing / corrupt bags
        if episode.task.family != self.family.name:
            raise RunnerError(
                f"demo {bag} is a {episode.task.family!r} demo; this policy was trained on {self.family.name!r}"
            )
        try:
            return self.demo_of([episode])
        except RunnerError as exc:
            raise RunnerError(f"demo {bag}: {exc}") from exc

    def demo_of(self, episodes: Sequence[Episode]) -> DemoBatch:
        """Recorded episodes (one per shot) as the network's input, with only the inputs it adapts on."""
        try:
            demo = demo_batch(list(episodes), self.family, self.horizon)
        except DemoError as exc:
            raise RunnerError(str(exc)) from exc
        return strip_demo(demo, self.demo_inputs)

    def adapt(self, demo: DemoBatch) -> float:
        """Condition the policy on ``demo`` (MIL: the configured inner gradient steps); returns seconds."""
        start = time.perf_counter()
        self.policy = self.method.condition(demo.to(self.device))
        self.policy.reset()
        self.adapt_seconds = time.perf_counter() - start
        self.step_times = StepTimes()
        return self.adapt_seconds

    def reset(self) -> None:
        """Start a new rollout with the same adapted policy."""
        if self.policy is not None:
            self.policy.reset()
        self.step_times = StepTimes()

    def act(self, camera_image: np.ndarray, state: np.ndarray) -> np.ndarray:
        """Full-resolution camera image (H, W, 3) uint8 and robot state -> action."""
        if self.policy is None:
            raise RunnerError("no demo adapted yet")
        state = np.asarray(state, dtype=np.float32)
        if state.shape != (len(self.family.state_names),) or not np.all(np.isfinite(state)):
            raise RunnerError(f"state must be {len(self.family.state_names)} finite numbers, got {state!r}")
        try:
            image = self.family.preprocess(camera_image)
        except ValueError as exc:
            raise RunnerError(str(exc)) from exc
        start = time.perf_counter()
        with torch.no_grad():
            action = np.asarray(self.policy.act(image, state), dtype=np.float32)
        self.step_times.seconds.append(time.perf_counter() - start)
        if not self.family.is_valid_action(action):
            raise RunnerError(f"policy produced an invalid action {action!r}")
        return action
