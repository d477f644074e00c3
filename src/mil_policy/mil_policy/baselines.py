"""The comparison methods of section 6: a contextual policy and an LSTM demo-conditioned policy.

Both are trained on the same meta-batches as MIL (adaptation demos ``a``, evaluation demos ``b`` of the
same tasks) with the same supervision: behaviour cloning on ``b`` (``config.maml.loss``) plus, with
``predict_target``, the auxiliary target regression. Instead of adapting weights on ``a`` they feed it
into the network:

* contextual: the final image of the demo, stacked channel-wise onto every current image, so the
  policy can read the goal off it (and nothing else: the paper's "n/a" for demos with actions);
* LSTM (Duan et al. 2017, as the seed paper uses it): an LSTM reads the demo frame by frame (conv
  features, plus the robot state and action when ``config.maml.demo_inputs`` grants them); its final
  hidden state is concatenated to the policy's per-step input.

Both reuse :class:`PolicyNetwork` for the conv trunk and the FC stack, so the three methods differ only
in how the demo reaches the policy. The bias transformation, bias image and second head are MIL's
adaptation devices and are switched off here: for a network that is never adapted, a learned constant
input is just another bias.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn
from torch.nn.functional import mse_loss

from mil_policy.config import MilConfig, NetworkConfig
from mil_policy.maml import DemoBatch, action_loss, clip_meta_gradient
from mil_policy.methods import ConditionedPolicy, Method, images_to_tensor
from mil_policy.network import PolicyNetwork, PolicyOutput, StateNormaliser


def _trunk_config(config: NetworkConfig, **changes: object) -> NetworkConfig:
    """The PolicyNetwork a baseline builds on: MIL's architecture without its adaptation devices."""
    return dataclasses.replace(config, bias_transform_dim=0, bias_image=False, two_head=False, **changes)


def _check_frames(config: NetworkConfig, images: torch.Tensor) -> None:
    expected = (config.image_channels, config.image_height, config.image_width)
    if tuple(images.shape[-3:]) != expected:
        got = tuple(images.shape[-3:])
        raise ValueError(f"images have shape {got} per frame, the network expects {expected}")


def _flat(x: torch.Tensor) -> torch.Tensor:
    """(M, N, ...) -> (M * N, ...)."""
    return x.reshape(-1, *x.shape[2:])


def bc_loss(out: PolicyOutput, actions: torch.Tensor, targets: torch.Tensor | None, config: MilConfig) -> torch.Tensor:
    """MIL's outer loss (behaviour cloning + weighted target regression), so all methods share supervision."""
    m = config.maml
    loss = action_loss(out.actions, actions, m.loss, m.loss_scale, m.action_weights)
    if out.target is not None and targets is not None:
        loss = loss + config.maml.target_loss_weight * mse_loss(out.target, targets)
    return loss


# ------------------------------------------------------------------------------------------ contextual


class ContextualNetwork(nn.Module):
    """PolicyNetwork on [goal image, current image] stacked channel-wise (2 x C input channels).

    The target head (placing) reads frame 0, which then also shows the goal image: it can localise the
    target container, as MIL's adapted features can.
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.policy = PolicyNetwork(_trunk_config(config, image_channels=2 * config.image_channels))

    def forward(self, context: torch.Tensor, images: torch.Tensor, states: torch.Tensor) -> PolicyOutput:
        """context (B, C, H, W) final demo image; images (B, T, C, H, W); states (B, T, S)."""
        _check_frames(self.config, images)
        _check_frames(self.config, context)
        goal = context.unsqueeze(1).expand(-1, images.shape[1], -1, -1, -1)
        return self.policy(torch.cat([goal, images], dim=2), states)


class ContextualMethod(Method):
    """Feedforward policy conditioned on the final image of the (first) adaptation demo."""

    def __init__(self, config: MilConfig) -> None:
        self.config = config
        self.module = ContextualNetwork(config.network)

    def training_loss(self, batch_a: DemoBatch, batch_b: DemoBatch) -> torch.Tensor:
        nb = batch_b.images.shape[1]
        goal = batch_a.images[:, 0, -1].repeat_interleave(nb, dim=0)  # (M * N_b, C, H, W)
        out = self.module(goal, _flat(batch_b.images), _flat(batch_b.states))
        targets = None if batch_b.targets is None else _flat(batch_b.targets)
        return bc_loss(out, _flat(batch_b.actions), targets, self.config)

    def after_backward(self) -> None:
        clip_meta_gradient(self.module, self.config.maml.meta_grad_clip)

    def condition(self, demo: DemoBatch) -> ConditionedPolicy:
        """N demos give N goal images; the policy averages their actions (section 6.2, 5-shot)."""
        device = next(self.module.parameters()).device
        return ContextualPolicy(self.module, demo.images[:, -1].to(device))


class _FirstFramePolicy(ConditionedPolicy):
    """Keeps the rollout's first frame: the target head reads it, as frame 0 of a demo in training."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.device = next(net.parameters()).device
        self.first: torch.Tensor | None = None

    def reset(self) -> None:
        self.first = None

    def _frames(self, image: np.ndarray, state: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(2, C, H, W) [first, current] frames and (2, S) states."""
        img = images_to_tensor(image).to(self.device)
        if self.first is None:
            self.first = img
        st = torch.as_tensor(np.asarray(state, np.float32), device=self.device)
        return torch.stack([self.first, img]), st.expand(2, -1)


class ContextualPolicy(_FirstFramePolicy):
    def __init__(self, net: ContextualNetwork, goals: torch.Tensor) -> None:
        super().__init__(net)
        self.goals = goals  # (N, C, H, W)

    @torch.no_grad()
    def act(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        frames, states = self._frames(image, state)
        n = self.goals.shape[0]
        out = self.net(self.goals, frames.expand(n, *frames.shape), states.expand(n, *states.shape))
        return out.actions[:, 1].mean(0).cpu().numpy()


# ------------------------------------------------------------------------------------------------ LSTM


class LstmNetwork(nn.Module):
    """Demo encoder (shared conv trunk -> LSTM) and a PolicyNetwork whose state input carries the code.

    The policy's "state" is [robot state, demo embedding, predicted target]; the target head sees the
    first frame's features and the embedding (the image alone cannot tell which container is the target).
    """

    def __init__(self, config: NetworkConfig, demo_inputs: str) -> None:
        super().__init__()
        self.config = config
        self.demo_inputs = demo_inputs
        c = config
        target = c.target_dim if c.predict_target else 0
        # The trunk's "state" is [robot state, code, target]: only the robot state is standardised, here.
        self.normalise_state = StateNormaliser(c.state_mean, c.state_std)
        self.policy = PolicyNetwork(
            _trunk_config(
                c,
                state_dim=c.state_dim + c.lstm_hidden + target,
                predict_target=False,
                normalise_state=False,
                state_mean=None,
                state_std=None,
            )
        )
        feat = self.policy.feature_dim
        enc_in = feat + (c.state_dim if self.reads_states else 0)
        enc_in += c.action_dim if self.reads_actions else 0
        self.encoder = nn.LSTM(enc_in, c.lstm_hidden, batch_first=True)
        if c.predict_target:
            self.target_head = nn.Linear(feat + c.lstm_hidden, c.target_dim)

    @property
    def reads_states(self) -> bool:
        return self.demo_inputs != "video_only"

    @property
    def reads_actions(self) -> bool:
        return self.demo_inputs == "full"

    def embed(self, demos: DemoBatch) -> torch.Tensor:
        """demos with leading (B,) -> (B, lstm_hidden): the LSTM's final hidden state."""
        _check_frames(self.config, demos.images)
        b, t = demos.images.shape[:2]
        parts = [self.policy.features(demos.images.reshape(b * t, *demos.images.shape[2:])).reshape(b, t, -1)]
        if self.reads_states:
            parts.append(self.normalise_state(demos.states))
        if self.reads_actions:
            parts.append(demos.actions)
        _, (h, _) = self.encoder(torch.cat(parts, dim=-1))
        return h[-1]

    def predict_target(self, embedding: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """embedding (B, H), first frame (B, C, H, W) -> (B, target_dim)."""
        return self.target_head(torch.cat([self.policy.features(first), embedding], dim=-1))

    def forward(
        self, embedding: torch.Tensor, images: torch.Tensor, states: torch.Tensor, target: torch.Tensor | None = None
    ) -> PolicyOutput:
        """embedding (B, H); images (B, T, C, H, W); states (B, T, S). ``target`` skips the target head
        (a rollout predicts it once, from its first frame)."""
        _check_frames(self.config, images)
        t = images.shape[1]
        context = [embedding]
        if self.config.predict_target:
            if target is None:
                target = self.predict_target(embedding, images[:, 0])
            context.append(target)
        ctx = torch.cat(context, dim=-1).unsqueeze(1).expand(-1, t, -1)
        out = self.policy(images, torch.cat([self.normalise_state(states), ctx], dim=-1))
        return PolicyOutput(actions=out.actions, pre_head=None, target=target)


class LstmMethod(Method):
    """Demo-conditioned recurrent policy; N demos (N-shot) average their embeddings."""

    def __init__(self, config: MilConfig) -> None:
        self.config = config
        self.module = LstmNetwork(config.network, config.maml.demo_inputs)

    def training_loss(self, batch_a: DemoBatch, batch_b: DemoBatch) -> torch.Tensor:
        m, n = batch_a.images.shape[:2]
        flat_a = DemoBatch(_flat(batch_a.images), _flat(batch_a.states), _flat(batch_a.actions))
        embedding = self.module.embed(flat_a).reshape(m, n, -1).mean(1)
        nb = batch_b.images.shape[1]
        embedding = embedding.repeat_interleave(nb, dim=0)  # (M * N_b, H)
        out = self.module(embedding, _flat(batch_b.images), _flat(batch_b.states))
        targets = None if batch_b.targets is None else _flat(batch_b.targets)
        return bc_loss(out, _flat(batch_b.actions), targets, self.config)

    def after_backward(self) -> None:
        clip_meta_gradient(self.module, self.config.maml.meta_grad_clip)

    @torch.no_grad()
    def condition(self, demo: DemoBatch) -> ConditionedPolicy:
        device = next(self.module.parameters()).device
        embedding = self.module.embed(demo.to(device)).mean(0, keepdim=True)
        return LstmPolicy(self.module, embedding)


class LstmPolicy(_FirstFramePolicy):
    def __init__(self, net: LstmNetwork, embedding: torch.Tensor) -> None:
        super().__init__(net)
        self.embedding = embedding  # (1, H)
        self.target: torch.Tensor | None = None

    def reset(self) -> None:
        super().reset()
        self.target = None

    @torch.no_grad()
    def act(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        frames, states = self._frames(image, state)
        if self.net.config.predict_target and self.target is None:
            self.target = self.net.predict_target(self.embedding, frames[:1])
        out = self.net(self.embedding, frames[None, 1:], states[None, 1:], target=self.target)
        return out.actions[0, 0].cpu().numpy()


def build_baseline(config: MilConfig) -> Method:
    """The baseline ``config.method`` names (``contextual`` or ``lstm``)."""
    if config.method == "contextual":
        return ContextualMethod(config)
    if config.method == "lstm":
        return LstmMethod(config)
    raise ValueError(f"unknown baseline {config.method!r}; expected 'contextual' or 'lstm'")
