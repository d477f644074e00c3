"""Learning methods behind one interface, so the trainer, evaluation and policy node treat them alike.

A method turns a meta-batch (adaptation demos ``a``, evaluation demos ``b`` of the same tasks) into a
training loss, and one task's demo(s) into a conditioned policy that acts step by step. MIL conditions
by gradient descent on the demo; the baselines (mil_policy.baselines) condition by feeding the demo in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from mil_policy.config import ConfigError, MilConfig
from mil_policy.maml import DemoBatch, MetaLearner, clip_meta_gradient, parameters_of
from mil_policy.network import PolicyNetwork


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    return t.movedim(-1, -3)


class ConditionedPolicy(ABC):
    """A policy for one task, after seeing its demo(s). ``reset`` before each rollout."""

    reads_images = True  # False: ``act`` ignores the image, so a rollout need not render one

    def reset(self) -> None:  # noqa: B027 - stateless policies need nothing
        """Forget the previous rollout (first frame, recurrent state)."""

    @abstractmethod
    def act(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 policy image and (S,) state -> (A,) action."""


class Method(ABC):
    """A trainable one-shot imitation method."""

    config: MilConfig
    module: nn.Module

    @abstractmethod
    def training_loss(self, batch_a: DemoBatch, batch_b: DemoBatch) -> torch.Tensor: ...

    @abstractmethod
    def condition(self, demo: DemoBatch) -> ConditionedPolicy:
        """demo: tensors with a leading (N demos,) dim for one task."""

    def after_backward(self) -> None:  # noqa: B027 - optional hook, a no-op for most methods
        """Hook between backward() and the optimiser step (MIL clips the meta-gradient here)."""


class MilMethod(Method):
    def __init__(self, config: MilConfig) -> None:
        self.config = config
        self.module = PolicyNetwork(config.network)
        self.learner = MetaLearner(self.module, config.maml)
        self.vectorized = config.train.vectorized

    def training_loss(self, batch_a: DemoBatch, batch_b: DemoBatch) -> torch.Tensor:
        vectorized = self.vectorized
        if vectorized is None:
            vectorized = batch_a.images.is_cuda
        return self.learner.meta_loss(parameters_of(self.module), batch_a, batch_b, vectorized=vectorized)

    def after_backward(self) -> None:
        clip_meta_gradient(self.module, self.config.maml.meta_grad_clip)

    def adapt(self, demo: DemoBatch, steps: int | None = None) -> dict[str, torch.Tensor]:
        """Adapted parameters for one task (no graph kept: this is test time)."""
        params = {k: v.detach().requires_grad_(True) for k, v in parameters_of(self.module).items()}
        with torch.enable_grad():
            adapted = self.learner.adapt(params, demo, steps=steps, create_graph=False)
        return {k: v.detach() for k, v in adapted.items()}

    def condition(self, demo: DemoBatch) -> ConditionedPolicy:
        return MilPolicy(self.module, self.adapt(demo))


class MilPolicy(ConditionedPolicy):
    """The adapted network. The target prediction reads the rollout's first frame, as in training."""

    def __init__(self, net: PolicyNetwork, params: dict[str, torch.Tensor]) -> None:
        self.net = net
        self.params = params
        self.device = next(iter(params.values())).device
        self.first: torch.Tensor | None = None

    def reset(self) -> None:
        self.first = None

    @torch.no_grad()
    def act(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        img = images_to_tensor(image).to(self.device)
        if self.first is None:
            self.first = img
        images = torch.stack([self.first, img])[None]  # (1, 2, C, H, W): frame 0 feeds the target head
        states = torch.as_tensor(np.asarray(state, np.float32), device=self.device).expand(1, 2, -1)
        out = functional_call(self.net, self.params, (images, states))
        return out.actions[0, 1].cpu().numpy()


def build_method(config: MilConfig) -> Method:
    """The method a config names (``config.method``)."""
    if config.method == "mil":
        return MilMethod(config)
    if config.method == "random":
        raise ConfigError(
            "the random policy has nothing to train or adapt; evaluate it with `evaluate --method random`"
        )
    from mil_policy import baselines

    return baselines.build_baseline(config)
