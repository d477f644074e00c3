"""Fixtures shared by the mil_policy tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from mil_sim import generate


@pytest.fixture(scope="session")
def reaching_demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 reaching train tasks x 3 demos (train_tiny.yaml holds 1 task out for validation); read-only."""
    root = tmp_path_factory.mktemp("reaching_demos")
    argv = ["--family", "reaching", "--split", "train", "--tasks", "4", "--demos-per-task", "3", "--out", str(root)]
    assert generate.main(argv) == 0
    return root
