"""Data-parallel meta-training across processes (``torchrun``), CPU (gloo) or GPU (nccl).

Every rank draws the *same* meta-batch (same sampler seed) and computes the meta-loss of its share of
the tasks, weighted by its share of the meta-batch, so the sum over ranks of the gradients is exactly
the gradient of the single-process meta-loss (the mean over all M tasks).

Why not ``DistributedDataParallel``: MIL's meta-loss calls the network through
``torch.func.functional_call`` on parameter dicts (one adapted set per task), which bypasses the module's
``forward`` and so DDP's forward hooks; DDP would not know which gradients to reduce. Instead the ranks
start from rank 0's parameters (:meth:`DistContext.broadcast_module`) and, after ``backward()``, sum the
gradients with one ``all_reduce`` of a flat buffer (:meth:`DistContext.all_reduce_gradients`). Every rank
then applies the identical update, so parameters stay identical without further communication;
:meth:`DistContext.max_divergence` checks that at every checkpoint. The same code path works for the
baselines, whose ``training_loss`` calls their module normally.
"""

from __future__ import annotations

import datetime
import importlib
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


class DistributedError(RuntimeError):
    """A distributed setup that cannot work (e.g. CUDA asked for but absent, fewer tasks than ranks)."""


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> the rank's GPU when CUDA is present, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DistributedError(f"device {name!r} requested but CUDA is not available (use --device cpu)")
        return torch.device(name if ":" in name else f"cuda:{local_rank % torch.cuda.device_count()}")
    if name != "cpu":
        raise DistributedError(f"unknown device {name!r}; expected auto, cpu or cuda")
    return torch.device("cpu")


@dataclass
class DistContext:
    """This process's place in the job; a single-process job is rank 0 of 1 and skips all collectives."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # noqa: RUF009 - immutable default

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, m: int) -> slice:
        """This rank's contiguous share of ``m`` tasks (sizes differ by at most one; may be empty)."""
        bounds = np.linspace(0, m, self.world_size + 1).round().astype(int)
        return slice(int(bounds[self.rank]), int(bounds[self.rank + 1]))

    def broadcast_module(self, module: nn.Module) -> None:
        """Start every rank from rank 0's parameters and buffers."""
        if not self.enabled:
            return
        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                dist.broadcast(t.data, src=0)

    def all_reduce_gradients(self, module: nn.Module) -> None:
        """Sum the gradients over ranks (each rank's loss is already weighted by its share).

        A parameter without a gradient on some ranks gets zeros there; one without a gradient on every
        rank keeps ``grad=None``, exactly as in a single process (so the optimiser skips it alike).
        """
        if not self.enabled:
            return
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            return
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=self.device)
        dist.all_reduce(has, op=dist.ReduceOp.MAX)
        live = [p for p, h in zip(params, has.tolist(), strict=True) if h > 0]
        if not live:
            return
        for p in live:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in live])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for p in live:
            n = p.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def all_agree(self, ok: bool) -> bool:
        """True only when every rank passes ``ok``; doubles as a barrier that cannot hang on a failure."""
        if not self.enabled:
            return ok
        t = torch.tensor([1.0 if ok else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item() > 0)

    def max_divergence(self, module: nn.Module) -> float:
        """Largest difference of any parameter between ranks (0 when they are in sync)."""
        if not self.enabled:
            return 0.0
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1).float() for p in module.parameters()])
            hi, lo = flat.clone(), flat.clone()
            dist.all_reduce(hi, op=dist.ReduceOp.MAX)
            dist.all_reduce(lo, op=dist.ReduceOp.MIN)
            return float((hi - lo).abs().max()) if flat.numel() else 0.0

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device: str = "auto", timeout_minutes: float = 120.0) -> DistContext:
    """Join the process group ``torchrun`` describes (RANK, WORLD_SIZE, ...); single process otherwise.

    The timeout is long because rank 0 may be building the dataset cache while the others wait.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = resolve_device(device, local_rank)
    if world <= 1:
        return DistContext(0, 1, 0, dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    # Imported here, before the process group exists. Why: importing torch._dynamo (which creating any
    # torch.optim optimizer does) while a process group exists takes ~10 extra references to it
    # (measured, torch 2.13), so destroy_process_group() no longer frees it; its gloo worker threads
    # then outlive close() and are torn down at interpreter exit, where 1-5 runs in 100 aborted with
    # "terminate called without an active exception" (SIGABRT) after training had finished.
    # src/mil_policy/test/test_ddp.py checks that no gloo thread outlives close().
    importlib.import_module("torch._dynamo")

    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if dev.type == "cuda" else "gloo",
            timeout=datetime.timedelta(minutes=timeout_minutes),
            **({"device_id": dev} if dev.type == "cuda" else {}),
        )
    return DistContext(rank, world, local_rank, dev)
