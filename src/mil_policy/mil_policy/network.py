"""The MIL policy network of section 5 / appendix A, written to be called functionally.

MAML evaluates the same network under many parameter sets (one adapted set per task), so the forward
pass takes its parameters from a dict (``torch.func.functional_call``) rather than owning them. The
module still registers them as ordinary parameters, so optimisers, ``state_dict`` and safetensors work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mil_policy.config import NetworkConfig


class SpatialSoftArgmax(nn.Module):
    """Expected (x, y) image position of each channel's softmax: 2 feature points per channel.

    With ``temperature`` the activations are divided by a learned temperature (one for all channels,
    log-parametrised so it stays positive) that starts at that value; None keeps a fixed temperature of 1.
    """

    def __init__(self, temperature: float | None = None) -> None:
        super().__init__()
        if temperature is not None:
            self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) feature maps -> each channel's spatial softmax, same shape."""
        n, c, h, w = x.shape
        if hasattr(self, "log_temperature"):
            x = x / self.log_temperature.exp()
        return F.softmax(x.reshape(n, c, h * w), dim=-1).reshape(n, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        softmax = self.probabilities(x)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
        fx = (softmax.sum(dim=2) * xs).sum(dim=-1)
        fy = (softmax.sum(dim=3) * ys).sum(dim=-1)
        return torch.cat([fx, fy], dim=-1)


class StateNormaliser(nn.Module):
    """(state - mean) / std per entry, with the training demos' statistics (``NetworkConfig.state_mean``,
    ``state_std``); the identity without them, as in checkpoints trained before it existed.

    The statistics are non-persistent buffers: they live in the config JSON beside the weights, so a
    checkpoint's tensor names do not depend on them and they are never meta-trained or adapted.
    """

    def __init__(self, mean: list[float] | None, std: list[float] | None) -> None:
        super().__init__()
        self.active = mean is not None and std is not None
        if self.active:
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
            self.register_buffer("inv_std", 1.0 / torch.tensor(std, dtype=torch.float32), persistent=False)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return (states - self.mean) * self.inv_std if self.active else states


@dataclass
class PolicyOutput:
    actions: torch.Tensor  # (B, T, A) post-update head (or the single head)
    pre_head: torch.Tensor | None  # (B, T, A) pre-update head of the two-head network
    target: torch.Tensor | None  # (B, target_dim) predicted target position, from the first frame


def conv_output_size(size: int, layers: list) -> int:
    for layer in layers:
        size = (size + 2 * (layer.kernel // 2) - layer.kernel) // layer.stride + 1
    return size


class PolicyNetwork(nn.Module):
    """Conv + layer norm + ReLU -> spatial soft-argmax (or flatten) -> [features, state, z, target] -> FC.

    ``z`` is the bias transformation (a learned vector concatenated to the FC input, section 5); with
    ``bias_image`` a learned image is concatenated to the input channels (appendix A.2). With
    ``two_head`` the last layer is duplicated: ``head_pre`` only feeds the inner (learned) loss, ``head``
    is the policy after adaptation (section 4.1).
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.normalise_state = StateNormaliser(c.state_mean, c.state_std)
        in_ch = c.image_channels + (c.image_channels if c.bias_image else 0)
        if c.bias_image:
            self.bias_image = nn.Parameter(torch.zeros(c.image_channels, c.image_height, c.image_width))
        convs, norms = [], []
        for layer in c.conv:
            convs.append(nn.Conv2d(in_ch, layer.filters, layer.kernel, layer.stride, padding=layer.kernel // 2))
            norms.append(nn.GroupNorm(1, layer.filters))  # layer norm over (C, H, W), per-channel affine
            in_ch = layer.filters
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(norms)
        if c.spatial_softmax:
            self.soft_argmax = SpatialSoftArgmax(c.softmax_temperature)
            feat_dim = 2 * in_ch
        else:
            feat_dim = in_ch * conv_output_size(c.image_height, c.conv) * conv_output_size(c.image_width, c.conv)
        self.feature_dim = feat_dim
        self._act = F.elu if c.activation == "elu" else F.relu
        if c.predict_target:
            self.target_head = nn.Linear(feat_dim, c.target_dim)
        if c.bias_transform_dim:
            self.bias_transform = nn.Parameter(torch.zeros(c.bias_transform_dim))
        fc_in = feat_dim + c.state_dim + c.bias_transform_dim + (c.target_dim if c.predict_target else 0)
        fcs = []
        for width in c.fc:
            fcs.append(nn.Linear(fc_in, width))
            fc_in = width
        self.fcs = nn.ModuleList(fcs)
        self.head = nn.Linear(fc_in, c.action_dim)
        if c.two_head:
            self.head_pre = nn.Linear(fc_in, c.action_dim)

    def post_update_only(self) -> set[str]:
        """Parameters the demonstration does not update: the post-update head of a two-head network."""
        return {"head.weight", "head.bias"} if self.config.two_head else set()

    def feature_maps(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float images in [0, 1] -> the last conv layer's maps (after its nonlinearity)."""
        x = torch.zeros_like(images) if self.config.blind else images
        if self.config.bias_image:
            x = torch.cat([x, self.bias_image.expand(x.shape[0], -1, -1, -1)], dim=1)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = self._act(norm(conv(x)))
        return x

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float images in [0, 1] -> (N, feature_dim)."""
        if self.config.blind:  # every frame is the same black image: its features once, for all N
            return self._pool(self.feature_maps(images[:1])).expand(images.shape[0], -1)
        return self._pool(self.feature_maps(images))

    def _pool(self, maps: torch.Tensor) -> torch.Tensor:
        return self.soft_argmax(maps) if self.config.spatial_softmax else maps.flatten(1)

    def forward(self, images: torch.Tensor, states: torch.Tensor) -> PolicyOutput:
        """images (B, T, C, H, W) float in [0, 1]; states (B, T, S) as the robot reports them (the
        network standardises them itself). Returns per-step actions."""
        c = self.config
        b, t = images.shape[:2]
        if images.shape[2:] != (c.image_channels, c.image_height, c.image_width):
            raise ValueError(
                f"images have shape {tuple(images.shape[2:])} per frame, the network expects "
                f"{(c.image_channels, c.image_height, c.image_width)}"
            )
        feats = self.features(images.reshape(b * t, *images.shape[2:])).reshape(b, t, -1)
        parts = [feats, self.normalise_state(states)]
        target = None
        if c.predict_target:
            target = self.target_head(feats[:, 0])
            parts.append(target.unsqueeze(1).expand(b, t, -1))
        if c.bias_transform_dim:
            parts.append(self.bias_transform.expand(b, t, -1))
        x = torch.cat(parts, dim=-1)
        for fc in self.fcs:
            x = self._act(fc(x))
        pre = self.head_pre(x) if c.two_head else None
        return PolicyOutput(actions=self.head(x), pre_head=pre, target=target)
