"""Checkpoints: weights in safetensors with the full JSON config beside them, never pickles.

A checkpoint is a directory holding ``model.safetensors`` (tensors only: nothing executes on load),
``config.json`` (the MilConfig that builds the network) and optionally ``trainer_state.safetensors`` +
``trainer_state.json`` (optimiser moments and counters, for resuming). Loading rebuilds the network
from the config and refuses weights whose names or shapes disagree with it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mil_policy.config import ConfigError, MilConfig

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TRAINER_TENSORS = "trainer_state.safetensors"
TRAINER_META = "trainer_state.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: missing, pickled, corrupt, or not matching its config."""


def save_checkpoint(
    path: str | Path,
    state: dict[str, torch.Tensor],
    config: MilConfig,
    extra: dict[str, object] | None = None,
    trainer_state: tuple[dict[str, torch.Tensor], dict[str, object]] | None = None,
) -> Path:
    """Write atomically (temp dir + rename) so an interrupted save never leaves a half checkpoint.

    ``trainer_state`` (tensors, JSON counters) is what resuming needs beyond the weights (optimiser
    moments, iteration, RNG states); it goes into the same directory, so weights and optimiser state
    are always of the same iteration.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp / WEIGHTS))
        meta = {"config": config.to_dict(), **(extra or {})}
        (tmp / CONFIG).write_text(json.dumps(meta, indent=2, sort_keys=True))
        if trainer_state is not None:
            tensors, counters = trainer_state
            flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
            save_file(flat, str(tmp / TRAINER_TENSORS))
            (tmp / TRAINER_META).write_text(json.dumps(counters, indent=2, sort_keys=True))
        if path.exists():
            old = path.with_name(path.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _checkpoint_dir(path: str | Path) -> Path:
    """The checkpoint directory ``path`` names (the directory or a file in it); CheckpointError if it is
    a pickle or does not exist."""
    path = Path(path)
    if path.suffix in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path} looks like a pickled torch checkpoint; mil loads only safetensors checkpoints "
            f"(a directory with {WEIGHTS} and {CONFIG}) because unpickling can run arbitrary code"
        )
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return path.parent if path.is_file() else path


def read_checkpoint_config(path: str | Path) -> tuple[MilConfig, dict[str, object]]:
    """Config and extra metadata without the weights: what a caller needs before building anything
    (resuming a run reads its config first and its weights once, later)."""
    path = _checkpoint_dir(path)
    weights, config_file = path / WEIGHTS, path / CONFIG
    for f in (weights, config_file):
        if not f.is_file():
            raise CheckpointError(f"checkpoint {path} has no {f.name}")
    try:
        meta = json.loads(config_file.read_text())
        config = MilConfig.from_dict(meta.pop("config"))
    except (json.JSONDecodeError, KeyError, ConfigError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{config_file}: unreadable config ({exc})") from exc
    if config.network.normalise_state and config.network.state_mean is None:
        raise CheckpointError(
            f"{config_file}: network.normalise_state is set but the config holds no state_mean / state_std; "
            "the network would see raw states it was not trained on (the trainer writes them)"
        )
    return config, meta


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], MilConfig, dict[str, object]]:
    """Weights, config and the extra metadata; clear CheckpointError for anything unusable."""
    config, meta = read_checkpoint_config(path)
    weights = _checkpoint_dir(path) / WEIGHTS
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: not a valid safetensors file ({exc})") from exc
    return state, config, meta


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load weights, naming every missing, unexpected or mis-shaped tensor instead of a bare RuntimeError."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{source} does not match the network its config builds: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, shape mismatches {shapes[:5]}"
        )
    module.load_state_dict(state)


def read_trainer_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """The (tensors, counters) a checkpoint was saved with for resuming; CheckpointError if absent."""
    path = Path(path)
    tensors_file, meta_file = path / TRAINER_TENSORS, path / TRAINER_META
    if not tensors_file.is_file() or not meta_file.is_file():
        raise CheckpointError(f"checkpoint {path} has no trainer state ({TRAINER_TENSORS}, {TRAINER_META})")
    try:
        return load_file(str(tensors_file)), json.loads(meta_file.read_text())
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable trainer state ({exc})") from exc
