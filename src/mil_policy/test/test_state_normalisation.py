"""Standardised robot states (``network.normalise_state``): config checks, every method's network, the
statistics the trainer computes from the training split, and checkpoints that carry them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mil_policy import train
from mil_policy.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from mil_policy.config import ConfigError, MilConfig, NetworkConfig
from mil_policy.dataset import STATE_STD_FLOOR, load_dataset, state_statistics
from mil_policy.maml import DemoBatch
from mil_policy.methods import build_method

CONFIG = Path(__file__).resolve().parents[3] / "config" / "train_tiny.yaml"
H, W, S, A = 10, 12, 3, 2
MEAN, STD = [0.5, -2.0, 10.0], [0.1, 3.0, 0.01]


def _config(method: str, stats: bool) -> MilConfig:
    net: dict[str, Any] = {
        "image_width": W,
        "image_height": H,
        "state_dim": S,
        "action_dim": A,
        "conv": [{"filters": 4, "kernel": 3, "stride": 2}],
        "fc": [16],
        "lstm_hidden": 8,
        "predict_target": True,
    }
    if stats:
        net.update(normalise_state=True, state_mean=MEAN, state_std=STD)
    maml = {"inner_steps": 1, "inner_lr": 0.05, "loss": "mse", "demo_inputs": "full"}
    return MilConfig.from_dict({"method": method, "network": net, "maml": maml})


def _batch(states: torch.Tensor, seed: int = 0) -> DemoBatch:
    g = torch.Generator().manual_seed(seed)
    m, n, t = states.shape[:3]
    return DemoBatch(
        torch.rand(m, n, t, 3, H, W, generator=g), states, torch.randn(m, n, t, A, generator=g), torch.randn(m, n, 2)
    )


@pytest.mark.parametrize("method", ["mil", "contextual", "lstm"])
def test_a_network_with_statistics_sees_the_standardised_states(method: str) -> None:
    """Same weights: raw states into the standardising network == standardised states into a plain one,
    through MIL's inner step, the contextual trunk and the LSTM's demo encoder and policy."""
    torch.manual_seed(0)
    standardising, plain = build_method(_config(method, True)), build_method(_config(method, False))
    plain.module.load_state_dict(standardising.module.state_dict())  # the statistics are not weights
    assert not any("mean" in k or "std" in k for k in standardising.module.state_dict())
    raw = torch.tensor(MEAN) + torch.tensor(STD) * torch.randn(2, 2, 4, S, generator=torch.Generator().manual_seed(1))
    scaled = (raw - torch.tensor(MEAN)) / torch.tensor(STD)
    a, b = _batch(raw[:, :1]), _batch(raw[:, 1:], seed=1)
    a_plain, b_plain = dataclasses.replace(a, states=scaled[:, :1]), dataclasses.replace(b, states=scaled[:, 1:])
    loss = standardising.training_loss(a, b)
    torch.testing.assert_close(loss, plain.training_loss(a_plain, b_plain), rtol=1e-5, atol=1e-6)
    # ... and the raw states into the plain network (what a checkpoint without statistics does) differ.
    assert not torch.allclose(loss, plain.training_loss(a, b))


def test_the_vectorised_meta_loss_standardises_too() -> None:
    """The vmap path takes the statistics from the module (they are not in the parameter dict)."""
    torch.manual_seed(0)
    method = build_method(_config("mil", True))
    raw = torch.tensor(MEAN) + torch.tensor(STD) * torch.randn(2, 2, 4, S)
    a, b = _batch(raw[:, :1]), _batch(raw[:, 1:], seed=1)
    params = dict(method.module.named_parameters())
    looped = method.learner.meta_loss(params, a, b, vectorized=False)
    torch.testing.assert_close(method.learner.meta_loss(params, a, b, vectorized=True), looped)


@pytest.mark.parametrize(
    ("network", "message"),
    [
        ({"state_mean": MEAN}, "come together"),
        ({"state_mean": MEAN, "state_std": STD}, "normalise_state is false"),
        ({"normalise_state": True, "state_mean": MEAN[:2], "state_std": STD[:2]}, "has 2 entries"),
        ({"normalise_state": True, "state_mean": MEAN, "state_std": [1.0, 0.0, 1.0]}, "finite and positive"),
        ({"normalise_state": True, "state_mean": [0.0, float("nan"), 0.0], "state_std": STD}, "finite"),
    ],
)
def test_bad_statistics_are_refused(network: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        NetworkConfig(state_dim=S, **network)


def test_a_checkpoint_carries_the_statistics(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = _config("mil", True)
    method = build_method(config)
    save_checkpoint(tmp_path / "ckpt", method.module.state_dict(), config)
    weights, loaded, _ = read_checkpoint(tmp_path / "ckpt")
    assert loaded.network.state_mean == MEAN and loaded.network.state_std == STD
    again = build_method(loaded)
    again.module.load_state_dict(weights)
    states = torch.randn(1, 1, 4, S)
    a, b = _batch(states), _batch(states, seed=1)
    torch.testing.assert_close(again.training_loss(a, b), method.training_loss(a, b))


def test_a_checkpoint_asking_for_standardised_states_without_statistics_is_refused(tmp_path: Path) -> None:
    config = _config("mil", False)
    config = dataclasses.replace(config, network=dataclasses.replace(config.network, normalise_state=True))
    save_checkpoint(tmp_path / "ckpt", build_method(config).module.state_dict(), config)
    with pytest.raises(CheckpointError, match="holds no state_mean"):
        read_checkpoint(tmp_path / "ckpt")


def test_the_trainer_standardises_with_the_training_tasks_statistics(reaching_demos: Path, tmp_path: Path) -> None:
    out, flag = tmp_path / "run", ("--set", "network.normalise_state=true")
    base = ["--demos", str(reaching_demos), "--threads", "1"]
    assert train.main(["--config", str(CONFIG), *base, "--out", str(out), "--iterations", "2", *flag]) == 0
    _, config, _ = read_checkpoint(out / "checkpoint")
    dataset = load_dataset(reaching_demos, config.data)
    split = dataset.split_tasks(config.data.val_fraction, config.train.seed)
    mean, std = state_statistics(dataset, split.train)
    assert config.network.state_mean == pytest.approx(mean) and config.network.state_std == pytest.approx(std)
    frames = np.concatenate([np.asarray(dataset.states[dataset.demos_of(t)]) for t in split.train])
    frames = frames.reshape(-1, config.network.state_dim)
    assert mean == pytest.approx(frames.mean(0).tolist(), rel=1e-5)
    assert std == pytest.approx(np.maximum(frames.std(0), STATE_STD_FLOOR).tolist(), rel=1e-4)
    val_frames = np.asarray(dataset.states[dataset.demos_of(split.val[0])]).reshape(-1, config.network.state_dim)
    assert not np.allclose(val_frames.mean(0), mean)  # a held-out task's states would have moved them
    # Resumed with the preset (which holds no statistics), and a new run started from its weights, keep them.
    resume = ["--config", str(CONFIG), *base, "--resume", "--iterations", "3", *flag]
    assert train.main([*resume, "--out", str(out)]) == 0
    init = ["--config", str(CONFIG), *base, "--iterations", "0", *flag, "--init-weights", str(out / "checkpoint")]
    assert train.main([*init, "--out", str(tmp_path / "from_weights")]) == 0
    for run in (out, tmp_path / "from_weights"):
        assert read_checkpoint(run / "checkpoint")[1].network.state_mean == config.network.state_mean


def test_statistics_need_training_demos() -> None:
    with pytest.raises(ValueError, match="no training demos"):
        state_statistics(None, [])  # type: ignore[arg-type]
