"""Data-parallel meta-training on CPU (gloo): two ranks give the single-process meta-gradient."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from mil_policy import train
from mil_policy.checkpoint import read_checkpoint
from mil_policy.config import MilConfig
from mil_policy.dataset import MetaBatchSampler, load_dataset
from mil_policy.distributed import DistContext, init_distributed
from mil_policy.methods import build_method
from mil_sim import generate

CONFIG = Path(__file__).resolve().parents[3] / "config" / "train_tiny.yaml"
META_BATCH = 3  # split 2 + 1 over two ranks: the uneven shares must be weighted right


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demos")
    argv = ["--family", "reaching", "--split", "train", "--tasks", "4", "--demos-per-task", "3", "--out", str(root)]
    assert generate.main(argv) == 0
    config = tiny_config()
    load_dataset(root, config.data, progress=False)  # build the cache once, before any worker starts
    return root


def tiny_config() -> MilConfig:
    config = MilConfig.load(CONFIG)
    config.maml.meta_batch = META_BATCH
    config.data.frames_per_demo = 4
    return config


def two_steps(ctx: DistContext, demos: Path, init_seed: int) -> dict[str, np.ndarray]:
    """Two meta-updates; the gradients of the first and the parameters after the second."""
    config = tiny_config()
    ds = load_dataset(demos, config.data, progress=False)
    split = ds.split_tasks(config.data.val_fraction, config.train.seed)
    sampler = MetaBatchSampler(ds, split.train, META_BATCH, frames_per_demo=4, seed=config.train.seed)
    torch.manual_seed(init_seed)
    method = build_method(config)
    ctx.broadcast_module(method.module)
    opt = torch.optim.Adam(method.module.parameters(), lr=config.maml.meta_lr)
    loss1, _ = train.meta_step(method, opt, sampler, ctx)
    out = {f"grad.{k}": p.grad.numpy().copy() for k, p in method.module.named_parameters()}
    loss2, _ = train.meta_step(method, opt, sampler, ctx)
    out.update({f"param.{k}": p.detach().numpy().copy() for k, p in method.module.named_parameters()})
    out["loss"] = np.array([loss1, loss2])
    return out


def _worker(rank: int, world: int, port: int, demos: str, out: str) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    ctx = init_distributed("cpu")
    try:
        # Different initialisations per rank: the broadcast must make rank 0's the common start.
        np.savez(Path(out) / f"rank{rank}.npz", **two_steps(ctx, Path(demos), init_seed=rank))
    finally:
        ctx.close()
    (Path(out) / f"rank{rank}_threads.json").write_text(json.dumps(gloo_threads()))


def gloo_threads() -> list[str]:
    """Names of this process's gloo threads (Linux): none may outlive close(). Why: a process group kept
    alive past destroy_process_group() is torn down at interpreter exit instead, which sometimes
    aborted the rank (SIGABRT, "terminate called without an active exception")."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return []  # not Linux: nothing to check
    names = []
    for task in tasks.iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:
            continue  # the thread ended meanwhile
    return sorted(n for n in names if "gloo" in n)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shares_cover_the_meta_batch() -> None:
    for m in (1, 2, 3, 5, 12):
        shares = [DistContext(rank=r, world_size=2).share(m) for r in range(2)]
        assert shares[0].start == 0 and shares[0].stop == shares[1].start and shares[1].stop == m
        assert abs((shares[0].stop - shares[0].start) - (shares[1].stop - shares[1].start)) <= 1


def test_two_gloo_ranks_match_a_single_process(demos: Path, tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, free_port(), str(demos), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2))
    assert [json.loads((tmp_path / f"rank{r}_threads.json").read_text()) for r in range(2)] == [[], []]
    torch.set_num_threads(1)
    single = two_steps(DistContext(), demos, init_seed=0)
    assert r0.keys() == single.keys()
    for k in single:
        np.testing.assert_array_equal(r0[k], r1[k], err_msg=f"ranks differ in {k}")
        np.testing.assert_allclose(r0[k], single[k], rtol=1e-5, atol=1e-7, err_msg=k)
    assert any(np.abs(v).max() > 0 for k, v in single.items() if k.startswith("grad."))


def test_torchrun_trains_like_a_single_process(demos: Path, tmp_path: Path) -> None:
    common = [
        "--config",
        str(CONFIG),
        "--demos",
        str(demos),
        "--iterations",
        "3",
        "--set",
        f"maml.meta_batch={META_BATCH}",
        "--set",
        "data.frames_per_demo=4",
    ]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "mil_policy.train",
        *common,
        "--out",
        str(tmp_path / "ddp"),
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = read_checkpoint(tmp_path / "ddp" / "checkpoint")[2]
    assert (meta["world_size"], meta["iteration"]) == (2, 3), proc.stderr[-3000:]
    assert train.main([*common, "--out", str(tmp_path / "single"), "--threads", "1"]) == 0
    a = load_file(tmp_path / "ddp" / "checkpoint" / "model.safetensors")
    b = load_file(tmp_path / "single" / "checkpoint" / "model.safetensors")
    for k in b:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert (tmp_path / "ddp" / "metrics.csv").read_text().count("\n") == 4  # header + 3 rows, rank 0 only
