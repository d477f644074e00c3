"""``network.blind``: the images reach nothing, the state still does, in every method and in training."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from mil_policy.config import MilConfig
from mil_policy.maml import DemoBatch
from mil_policy.methods import build_method
from mil_policy.network import PolicyNetwork

H, W, S, A = 10, 12, 3, 2


def _config(method: str, blind: bool) -> MilConfig:
    net: dict[str, Any] = {
        "image_width": W,
        "image_height": H,
        "state_dim": S,
        "action_dim": A,
        "conv": [{"filters": 4, "kernel": 3, "stride": 2}],
        "fc": [16],
        "lstm_hidden": 8,
        "predict_target": True,
        "bias_image": True,
        "blind": blind,
    }
    maml = {"inner_steps": 1, "inner_lr": 0.05, "loss": "mse", "demo_inputs": "full"}
    return MilConfig.from_dict({"method": method, "network": net, "maml": maml})


def _batch(image_seed: int, state_seed: int = 0) -> tuple[DemoBatch, DemoBatch]:
    gi, gs = torch.Generator().manual_seed(image_seed), torch.Generator().manual_seed(state_seed)
    images = torch.rand(2, 2, 4, 3, H, W, generator=gi)
    states = torch.randn(2, 2, 4, S, generator=gs)
    actions = torch.randn(2, 2, 4, A, generator=gs)
    targets = torch.randn(2, 2, 2, generator=gs)
    halves = [
        DemoBatch(images[:, k : k + 1], states[:, k : k + 1], actions[:, k : k + 1], targets[:, k : k + 1])
        for k in (0, 1)
    ]
    return halves[0], halves[1]


@pytest.mark.parametrize("blind", [True, False])
def test_a_blind_network_acts_on_the_state_alone(blind: bool) -> None:
    torch.manual_seed(0)
    net = PolicyNetwork(_config("mil", blind).network)
    g = torch.Generator().manual_seed(1)
    images, other_images = torch.rand(2, 1, 5, 3, H, W, generator=g)
    states, other_states = torch.randn(2, 1, 5, S, generator=g)
    out = net(images, states)
    same_state = net(other_images, states)
    assert torch.equal(out.actions, same_state.actions) == blind
    assert torch.equal(out.target, same_state.target) == blind
    assert not torch.allclose(out.actions, net(images, other_states).actions)


@pytest.mark.parametrize("method", ["mil", "contextual", "lstm"])
def test_blind_training_losses_ignore_the_images(method: str) -> None:
    """Through MIL's inner step and the baselines' demo encoders; the sighted twin does see them."""
    for blind in (True, False):
        torch.manual_seed(0)
        learner = build_method(_config(method, blind))
        loss = learner.training_loss(*_batch(image_seed=1))
        other_images = learner.training_loss(*_batch(image_seed=2))
        assert torch.equal(loss, other_images) == blind
        assert not torch.equal(loss, learner.training_loss(*_batch(image_seed=1, state_seed=3)))


def test_a_blind_network_is_the_sighted_one_shown_black_frames() -> None:
    """Blind computes one black frame's features for all frames: the same outputs and gradients as the
    same weights shown black frames one by one."""
    torch.manual_seed(0)
    blind, sighted = PolicyNetwork(_config("mil", True).network), PolicyNetwork(_config("mil", False).network)
    sighted.load_state_dict(blind.state_dict())
    states = torch.randn(2, 5, S, generator=torch.Generator().manual_seed(2))
    out_blind = blind(torch.rand(2, 5, 3, H, W), states)
    out_black = sighted(torch.zeros(2, 5, 3, H, W), states)
    torch.testing.assert_close(out_blind.actions, out_black.actions)
    torch.testing.assert_close(out_blind.target, out_black.target)
    out_blind.actions.square().sum().backward()
    out_black.actions.square().sum().backward()
    for (name, a), b in zip(blind.named_parameters(), sighted.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, msg=name)
