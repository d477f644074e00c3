"""What resuming needs beyond the weights, as tensors + JSON (checkpoints hold no pickles).

``torch.optim.Optimizer.state_dict()`` mixes tensors (Adam's moments and step counts) with plain values
(hyper-parameters); the tensors go to safetensors under ``optim.<param index>.<name>`` and the rest to
JSON. RNG states follow the same split: torch's generator states are byte tensors, numpy's is a dict.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

OPTIM_PREFIX = "optim."
RNG_CPU = "rng.torch_cpu"
RNG_CUDA_PREFIX = "rng.torch_cuda."


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{OPTIM_PREFIX}{idx}.{name}"] = value
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(OPTIM_PREFIX):
            idx, name = key[len(OPTIM_PREFIX) :].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    for key, value in meta.get("scalars", {}).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_to_flat(numpy_rngs: dict[str, np.random.Generator]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {RNG_CPU: torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"{RNG_CUDA_PREFIX}{i}"] = s
    return tensors, {name: rng.bit_generator.state for name, rng in numpy_rngs.items()}


def rng_from_flat(
    numpy_rngs: dict[str, np.random.Generator], tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    if RNG_CPU in tensors:
        torch.set_rng_state(tensors[RNG_CPU])
    cuda = sorted(k for k in tensors if k.startswith(RNG_CUDA_PREFIX))
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    for name, rng in numpy_rngs.items():
        if name in meta:
            rng.bit_generator.state = meta[name]
