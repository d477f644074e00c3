"""Fixtures shared by the mil_policy tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from mil_policy.checkpoint import save_checkpoint
from mil_policy.config import MilConfig
from mil_policy.methods import build_method
from mil_sim import generate
from mil_sim.core import TaskFamily
from mil_sim.families import get_family

# Reaching episodes of 1 s keep a closed-loop rollout short; the expert still reaches in time.
REACHING_1S = {"episode_steps": 20}
TINY_CONFIG = Path(__file__).resolve().parents[3] / "config" / "train_tiny.yaml"


@pytest.fixture(scope="session")
def reaching_demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 reaching train tasks x 3 demos (train_tiny.yaml holds 1 task out for validation); read-only."""
    root = tmp_path_factory.mktemp("reaching_demos")
    argv = ["--family", "reaching", "--split", "train", "--tasks", "4", "--demos-per-task", "3", "--out", str(root)]
    assert generate.main(argv) == 0
    return root


@pytest.fixture(scope="session")
def reaching_1s() -> TaskFamily:
    """The reaching family with 1-s (20-step) episodes; its ``config`` gives the overrides."""
    return get_family("reaching", **REACHING_1S)


@pytest.fixture
def untrained_reaching_1s(tmp_path: Path) -> Path:
    """An untrained tiny policy for ``reaching_1s`` (train_tiny.yaml: it acts at 6 of the 20 steps)."""
    config = MilConfig.load(TINY_CONFIG)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, family_config=dict(REACHING_1S)))
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "untrained_ckpt", build_method(config).module.state_dict(), config)
