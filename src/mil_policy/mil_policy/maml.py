"""MAML for behaviour cloning (Algorithm 1 of the seed paper), with the paper's extensions.

* K inner gradient steps of size alpha on the adaptation demo(s), inner gradients clipped element-wise.
* Second-order meta-gradient (differentiate through the inner steps) or first-order.
* Two-head networks: the inner loss is the learned loss of equation 3 on the pre-update head, or, for
  demos without actions, ||W y_t + b||^2 (section 4.2); the post-update head is never adapted.
* N-shot: the inner loss averages over N demos, i.e. the inner gradient is the average of theirs.
* An auxiliary target-position regression (placing) added to the losses.
* Optionally (``learn_inner_lr``), meta-learned step sizes: one per parameter tensor and inner step.

Two interchangeable paths compute the meta-loss over a meta-batch: ``loop`` (plain autograd, one task
after another: the readable reference) and ``vmap`` (torch.func: the inner loop of all tasks at once).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from mil_policy.config import ConfigError, MamlConfig
from mil_policy.network import PolicyNetwork, PolicyOutput

Params = dict[str, torch.Tensor]
INNER_LR_MODULE = "inner_log_lr"  # where learned step sizes live on the network (see MetaLearner)


@dataclass
class DemoBatch:
    """Demos as tensors. Leading dims: (N demos,) for one task, (M tasks, N demos) for a meta-batch.

    images (..., T, C, H, W) float in [0, 1]; states (..., T, S); actions (..., T, A);
    targets (..., 2): the target position (from the demo's final end-effector position) or None.
    """

    images: torch.Tensor
    states: torch.Tensor
    actions: torch.Tensor
    targets: torch.Tensor | None = None

    def task(self, i: int) -> DemoBatch:
        return DemoBatch(
            self.images[i], self.states[i], self.actions[i], None if self.targets is None else self.targets[i]
        )

    def to(self, device: torch.device | str) -> DemoBatch:
        return DemoBatch(
            self.images.to(device),
            self.states.to(device),
            self.actions.to(device),
            None if self.targets is None else self.targets.to(device),
        )


def action_loss(
    pred: torch.Tensor, target: torch.Tensor, kind: str, scale: float = 1.0, weights: Sequence[float] | None = None
) -> torch.Tensor:
    """Equation 2, or the placing l1 + l2/100 mix, as ``scale`` x the mean over frames and action dims.

    A mean keeps the loss independent of how many frames a meta-iteration samples (training may use a
    subset, adaptation at test time uses the whole demo); ``scale`` restores the magnitude the paper's
    step sizes were tuned for (see ``MamlConfig.loss_scale``). ``weights`` (one per action dimension,
    normalised to mean 1) weigh the dimensions (``MamlConfig.action_weights``).
    """
    if kind not in ("mse", "l1l2"):
        raise ValueError(f"unknown loss {kind!r}")
    diff = pred - target
    w = 1.0
    if weights is not None:
        w = torch.as_tensor(weights, dtype=diff.dtype, device=diff.device)
        w = w / w.mean()
    sq = (diff.square() * w).mean()
    return scale * (sq if kind == "mse" else (diff.abs() * w).mean() + 0.01 * sq)


class MetaLearner:
    """Inner adaptation and meta-loss for a PolicyNetwork under a MamlConfig."""

    def __init__(self, net: PolicyNetwork, config: MamlConfig) -> None:
        self.net = net
        self.config = config
        self.frozen = net.post_update_only()
        names = [name for name, _ in net.named_parameters()]
        unmatched = sorted(k for k in config.inner_lr_scale if not any(n.startswith(k) for n in names))
        if unmatched:
            raise ConfigError(f"maml.inner_lr_scale names no parameter: {unmatched}; parameters are {', '.join(names)}")
        if config.learn_inner_lr and not hasattr(net, INNER_LR_MODULE):
            # Registered on the network, so the meta-optimiser, DDP's gradient reduction and the
            # safetensors checkpoint carry them like any weight. Log-parametrised: step sizes stay
            # positive, and Adam changes them by a similar factor whatever their size.
            steps = max(config.inner_steps, 1)
            lrs = {
                _lr_key(name): nn.Parameter(torch.full((steps,), _log(config.inner_lr_of(name))))
                for name, _ in net.named_parameters()
                if name not in self.frozen
            }
            net.register_module(INNER_LR_MODULE, nn.ParameterDict(lrs))
        self.frozen = self.frozen | {f"{INNER_LR_MODULE}.{k}" for k in getattr(net, INNER_LR_MODULE, {})}

    # ----------------------------------------------------------------------------------- losses
    def _forward(self, params: Params, images: torch.Tensor, states: torch.Tensor):
        return functional_call(self.net, params, (images, states))

    def inner_loss(self, params: Params, demo: DemoBatch) -> torch.Tensor:
        """The loss the demo is adapted with; which one depends on inner_loss and demo_inputs."""
        cfg = self.config
        states = torch.zeros_like(demo.states) if cfg.demo_inputs == "video_only" else demo.states
        out = self._forward(params, demo.images, states)
        if cfg.inner_loss == "bc":
            loss = action_loss(out.actions, demo.actions, cfg.loss, cfg.loss_scale, cfg.action_weights)
        elif cfg.inner_loss == "learned_bc":
            loss = action_loss(out.pre_head, demo.actions, cfg.loss, cfg.loss_scale, cfg.action_weights)
        else:  # learned_no_actions: ||W y_t + b||^2
            loss = cfg.loss_scale * out.pre_head.pow(2).mean()
        if cfg.demo_inputs != "video_only":
            loss = loss + self.target_loss(out, demo.targets)
        return loss

    def outer_loss(self, params: Params, demo: DemoBatch) -> torch.Tensor:
        """Imitation loss of the adapted policy on the held-out demo of the same task."""
        out = self._forward(params, demo.images, demo.states)
        cfg = self.config
        loss = action_loss(out.actions, demo.actions, cfg.loss, cfg.loss_scale, cfg.action_weights)
        return loss + self.target_loss(out, demo.targets)

    def target_loss(self, out: PolicyOutput, targets: torch.Tensor | None) -> torch.Tensor | float:
        """Weighted regression of the first frame's target estimate (0 without a target head or targets)."""
        if out.target is None or targets is None:
            return 0.0
        return self.config.target_loss_weight * F.mse_loss(out.target, targets)

    # ------------------------------------------------------------------------------- adaptation
    def _step(self, params: Params, grads: Params, log_lrs: Params, step: int) -> Params:
        """One inner update of the adaptable ``params`` (``log_lrs``: learned step sizes, or empty)."""
        clip = self.config.inner_grad_clip
        new = dict(params)
        for k, g in grads.items():
            if self.config.first_order:
                g = g.detach()
            if clip is not None:
                g = g.clamp(-clip, clip)
            lr = log_lrs[f"{INNER_LR_MODULE}.{_lr_key(k)}"][step].exp() if log_lrs else self.config.inner_lr_of(k)
            new[k] = params[k] - lr * g
        return new

    @staticmethod
    def _log_lrs(params: Params) -> Params:
        return {k: v for k, v in params.items() if k.startswith(INNER_LR_MODULE + ".")}

    def adapt(self, params: Params, demo: DemoBatch, steps: int | None = None, create_graph: bool = True) -> Params:
        """theta' = theta - alpha * clip(grad inner_loss), ``steps`` times (reference autograd path)."""
        steps = self.config.inner_steps if steps is None else steps
        log_lrs = self._log_lrs(params)
        for step in range(steps):
            keys = [k for k in params if k not in self.frozen]
            loss = self.inner_loss(params, demo)
            g = torch.autograd.grad(
                loss,
                [params[k] for k in keys],
                create_graph=create_graph and not self.config.first_order,
                allow_unused=True,
            )
            params = self._step(
                params,
                {k: gi if gi is not None else torch.zeros_like(params[k]) for k, gi in zip(keys, g, strict=True)},
                log_lrs,
                min(step, self.config.inner_steps - 1),  # test time may take more steps than training
            )
        return params

    def _adapt_functional(self, params: Params, demo: DemoBatch) -> Params:
        """Same as ``adapt`` with torch.func.grad, so it can run under vmap."""
        frozen = {k: v for k, v in params.items() if k in self.frozen}

        def loss_of(adaptable: Params) -> torch.Tensor:
            return self.inner_loss({**adaptable, **frozen}, demo)

        adaptable = {k: v for k, v in params.items() if k not in self.frozen}
        log_lrs = self._log_lrs(params)
        for step in range(self.config.inner_steps):
            adaptable = self._step(adaptable, grad(loss_of)(adaptable), log_lrs, step)
        return {**adaptable, **frozen}

    # -------------------------------------------------------------------------------- meta-loss
    def task_meta_loss(self, params: Params, demo_a: DemoBatch, demo_b: DemoBatch) -> torch.Tensor:
        return self.outer_loss(self.adapt(params, demo_a), demo_b) + self.unadapted_target_loss(params, demo_b)

    def unadapted_target_loss(self, params: Params, demo: DemoBatch) -> torch.Tensor | float:
        """``unadapted_target_weight`` x the target regression of the network before adaptation.

        Why: left free, the unadapted estimate drifts metres off, where the clipped inner gradient is
        the same for every demo; the inner step then becomes a fixed correction that fits the demo's
        target without reading it (docs/results.md, placing runs p40-p40e). Held near the targets, the
        inner gradient depends on the demo again.
        """
        weight = self.config.unadapted_target_weight
        if weight == 0 or demo.targets is None:
            return 0.0
        return weight * self.target_loss(self.first_frame_output(params, demo), demo.targets)

    def first_frame_output(self, params: Params, demo: DemoBatch) -> PolicyOutput:
        """The network on each demo's first frame only: all the target head reads, at 1/T of the cost."""
        return self._forward(params, demo.images[:, :1], demo.states[:, :1])

    def meta_loss(
        self, params: Params, batch_a: DemoBatch, batch_b: DemoBatch, vectorized: bool = True
    ) -> torch.Tensor:
        """Mean over the meta-batch of the post-adaptation loss; backward() gives the meta-gradient.

        batch_a: (M, N, ...) adaptation demos; batch_b: (M, N_b, ...) evaluation demos.
        """
        m = batch_a.images.shape[0]
        if batch_b.images.shape[0] != m:
            raise ValueError(f"{m} adaptation tasks but {batch_b.images.shape[0]} evaluation tasks")
        if not vectorized:
            return torch.stack([self.task_meta_loss(params, batch_a.task(i), batch_b.task(i)) for i in range(m)]).mean()

        fields_a, fields_b = _tensors(batch_a), _tensors(batch_b)

        def one_task(*tensors: torch.Tensor | None) -> torch.Tensor:
            a, b = DemoBatch(*tensors[:4]), DemoBatch(*tensors[4:])
            return self.outer_loss(self._adapt_functional(params, a), b) + self.unadapted_target_loss(params, b)

        args = (*fields_a, *fields_b)
        in_dims = tuple(None if x is None else 0 for x in args)
        return vmap(one_task, in_dims=in_dims, randomness="error")(*args).mean()


def _log(lr: float) -> float:
    """log of a step size, with 0 (no adaptation) as a step size of e^-30."""
    return math.log(lr) if lr > 0 else -30.0


def _lr_key(param_name: str) -> str:
    """ParameterDict key of a parameter's learned step sizes (module names cannot contain dots)."""
    return param_name.replace(".", "__")


def _tensors(batch: DemoBatch) -> tuple[torch.Tensor | None, ...]:
    return (batch.images, batch.states, batch.actions, batch.targets)


def parameters_of(net: torch.nn.Module) -> Params:
    """The network's parameters as a name -> tensor dict (the leaves the meta-optimiser updates)."""
    return dict(net.named_parameters())


def clip_meta_gradient(net: torch.nn.Module, clip: float | None) -> None:
    """Element-wise clip of the meta-gradient (appendix A.1 clips to [-20, 20])."""
    if clip is None:
        return
    for p in net.parameters():
        if p.grad is not None:
            p.grad.clamp_(-clip, clip)
