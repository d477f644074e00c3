"""Checkpoints are safetensors + JSON config; pickles, corrupt files and mismatched configs are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mil_policy.checkpoint import CheckpointError, load_into, read_checkpoint, save_checkpoint
from mil_policy.config import ConvLayer, MilConfig, NetworkConfig
from mil_policy.methods import build_method
from mil_policy.network import PolicyNetwork


def _config(filters: int = 4) -> MilConfig:
    return MilConfig(network=NetworkConfig(image_width=16, image_height=12, conv=[ConvLayer(filters, 3, 2)], fc=[8]))


def test_round_trip(tmp_path: Path) -> None:
    cfg = _config()
    net = PolicyNetwork(cfg.network)
    save_checkpoint(tmp_path / "ckpt", net.state_dict(), cfg, extra={"iteration": 7})
    state, cfg2, meta = read_checkpoint(tmp_path / "ckpt")
    assert cfg2 == cfg and meta["iteration"] == 7
    net2 = PolicyNetwork(cfg2.network)
    load_into(net2, state)
    for (k, a), (_, b) in zip(net.state_dict().items(), net2.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    # Overwriting an existing checkpoint replaces it whole.
    save_checkpoint(tmp_path / "ckpt", net.state_dict(), cfg, extra={"iteration": 8})
    assert read_checkpoint(tmp_path / "ckpt")[2]["iteration"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_refuses_pickles_missing_and_corrupt(tmp_path: Path) -> None:
    pt = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1)}, pt)
    with pytest.raises(CheckpointError, match="pickled"):
        read_checkpoint(pt)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope")
    cfg = _config()
    save_checkpoint(tmp_path / "c", PolicyNetwork(cfg.network).state_dict(), cfg)
    (tmp_path / "c" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        read_checkpoint(tmp_path / "c")
    (tmp_path / "c" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable config"):
        read_checkpoint(tmp_path / "c")


def test_mismatched_config_is_named(tmp_path: Path) -> None:
    small, big = _config(4), _config(8)
    save_checkpoint(tmp_path / "c", PolicyNetwork(small.network).state_dict(), small)
    state, _, _ = read_checkpoint(tmp_path / "c")
    with pytest.raises(CheckpointError, match=r"convs.0.weight: \(4, 3, 3, 3\) vs \(8, 3, 3, 3\)"):
        load_into(PolicyNetwork(big.network), state)


def test_learned_inner_step_sizes_travel_with_the_weights(tmp_path: Path) -> None:
    """maml.learn_inner_lr: the step sizes are saved, restored and used by the rebuilt method's adaptation."""
    cfg = _config()
    cfg.maml.learn_inner_lr = True
    method = build_method(cfg)
    with torch.no_grad():
        method.module.get_parameter("inner_log_lr.head__bias").fill_(-1.5)
    save_checkpoint(tmp_path / "ckpt", method.module.state_dict(), cfg)
    state, cfg2, _ = read_checkpoint(tmp_path / "ckpt")
    assert cfg2.maml.learn_inner_lr and "inner_log_lr.head__bias" in state
    rebuilt = build_method(cfg2)
    load_into(rebuilt.module, state)
    assert rebuilt.module.get_parameter("inner_log_lr.head__bias").tolist() == [-1.5] * cfg.maml.inner_steps
    with pytest.raises(CheckpointError):  # a fixed-step-size network has no place for them
        load_into(PolicyNetwork(cfg.network), state)
