"""``train``: meta-train a method (MIL or a baseline) on a directory of demo bags.

    train --config config/train_reaching.yaml --demos DIR --out runs/NAME [--iterations N]
          [--set maml.inner_steps=2 ...] [--resume | --init-weights CKPT] [--device auto|cpu|cuda]
    torchrun --nproc_per_node=2 -m mil_policy.train ...      # data-parallel (mil_policy.distributed)

Writes into OUT: ``checkpoint/`` (latest, with optimiser and RNG state for ``--resume``), ``best/``
(lowest validation loss), ``snapshots/iter_NNNNNN/`` (weights every ``train.snapshot_every``
iterations, for ``select_checkpoint``), ``metrics.csv``, ``tensorboard/``, ``training_curve.png`` and
``config.json``. Validation is the meta-loss on held-out *tasks* (fixed meta-batches, so the numbers are
comparable across iterations). Ctrl-C (or SIGTERM) finishes the current iteration, saves a checkpoint
and exits with status 130; a second Ctrl-C aborts at once. User errors exit with status 2 and one line.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from mil_policy.checkpoint import (
    CheckpointError,
    load_into,
    read_checkpoint,
    read_checkpoint_config,
    read_trainer_state,
    save_checkpoint,
)
from mil_policy.config import ConfigError, MilConfig
from mil_policy.dataset import (
    DatasetError,
    MetaBatchSampler,
    MetaDataset,
    check_compatible,
    limit_train_tasks,
    load_dataset,
    other_task_demos,
    state_statistics,
)
from mil_policy.distributed import DistContext, DistributedError, init_distributed
from mil_policy.methods import Method, build_method
from mil_policy.train_log import CSV_NAME, CURVE_NAME, TrainLog, plot_curve
from mil_policy.trainer_state import optimizer_from_flat, optimizer_to_flat, rng_from_flat, rng_to_flat

LATEST = "checkpoint"
BEST = "best"
SNAPSHOTS = "snapshots"
EXIT_INTERRUPTED = 130


def snapshot_path(run: Path, iteration: int) -> Path:
    """Where a run keeps its weights of ``iteration`` (``train.snapshot_every``)."""
    return run / SNAPSHOTS / f"iter_{iteration:06d}"


def snapshot_iterations(run: Path) -> dict[int, Path]:
    """The run's snapshot directories by iteration (the names :func:`snapshot_path` gives)."""
    found = {}
    for d in (run / SNAPSHOTS).glob("iter_*"):
        digits = d.name.removeprefix("iter_")
        if digits.isdigit() and d.is_dir():
            found[int(digits)] = d
    return found


def drop_later_snapshots(run: Path, iteration: int) -> None:
    """Delete snapshots of iterations after ``iteration``: on resume they come from the part of the run
    that was lost with the interruption (as the metrics rows TrainLog drops), not from this one."""
    for it, d in snapshot_iterations(run).items():
        if it > iteration:
            shutil.rmtree(d)


class TrainError(RuntimeError):
    """Training cannot start or go on (the message says why)."""


USER_ERRORS = (ConfigError, DatasetError, CheckpointError, DistributedError, TrainError)


# ------------------------------------------------------------------------------------------------ CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train", description="Meta-train MIL or a baseline on demo bags.")
    p.add_argument("--config", type=Path, help="YAML/JSON MilConfig (optional with --resume)")
    p.add_argument(
        "--demos",
        type=Path,
        required=True,
        help="directory of demo bags (generate_demos --out), or one of its cache directories "
        "(DEMOS/.mil_cache/<family>-T<horizon>-<hash>) copied without the bags, e.g. to a GPU machine",
    )
    p.add_argument("--out", type=Path, required=True, help="run directory for checkpoints and logs")
    p.add_argument("--iterations", type=int, help="total meta-iterations (overrides train.iterations)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. maml.inner_steps=2 (value parsed as YAML; repeatable)",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint (fresh start if none)")
    p.add_argument(
        "--init-weights",
        type=Path,
        metavar="CHECKPOINT",
        help="start a new run from this checkpoint's weights (same method and network; a fresh optimiser, "
        "iteration 0), e.g. to train a shipped checkpoint longer when its optimiser state is gone",
    )
    p.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), help="overrides train.device (auto: the GPU if there is one)"
    )
    p.add_argument("--cache", type=Path, help="dataset cache directory (default DEMOS/.mil_cache)")
    p.add_argument("--rebuild-cache", action="store_true", help="rebuild the dataset cache even if current")
    p.add_argument(
        "--threads",
        type=int,
        help="torch intra-op CPU threads (default: torch's choice; 1 is fastest for small networks on a busy machine)",
    )
    p.add_argument(
        "--val-batches", type=int, default=2, help="fixed validation meta-batches averaged per validation (default 2)"
    )
    return p


def apply_overrides(config: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``section.field=value`` assignments on a config dict (values parsed as YAML: 2, true, [1, 2])."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from None
        node = config
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part, {}), dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a section")
            node = node.setdefault(part, {})
        node[leaf] = value
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        dist_ctx = init_distributed(_device_arg(args))
    except USER_ERRORS as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 2
    try:
        return Trainer(args, dist_ctx).run()
    except USER_ERRORS as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 2
    finally:
        dist_ctx.close()


def _device_arg(args: argparse.Namespace) -> str:
    """--device, else train.device of the config (after --set), else auto; needed before the config
    is fully validated because joining the process group comes first (its errors are then reported
    by the trainer, on every rank alike)."""
    if args.device:
        return args.device
    with contextlib.suppress(ConfigError, CheckpointError, OSError, KeyError, TypeError):
        if args.config is not None:
            d = MilConfig.load(args.config).to_dict()
        elif args.resume:
            d = read_checkpoint_config(args.out / LATEST)[0].to_dict()
        else:
            return "auto"
        return str(apply_overrides(d, args.overrides).get("train", {}).get("device", "auto"))
    return "auto"


def inherit_state_statistics(config: MilConfig, saved: MilConfig) -> MilConfig:
    """``config`` with ``saved``'s state statistics when it asks for standardised states and has none:
    weights resumed or started from were trained on states standardised with those, and a preset never
    holds them (the trainer computes them for a new run)."""
    net = config.network
    if net.normalise_state and net.state_mean is None and saved.network.state_mean is not None:
        stats = {"state_mean": saved.network.state_mean, "state_std": saved.network.state_std}
        return dataclasses.replace(config, network=dataclasses.replace(net, **stats))
    return config


def require_same_model(saved: MilConfig, config: MilConfig, source: str, advice: str) -> None:
    """Weights saved by ``saved``'s method and network fit only a run of the same (resumed or started
    from them); ``source`` names where they come from, ``advice`` what to do instead."""
    if (saved.method, saved.network) != (config.method, config.network):
        raise TrainError(f"{source} was trained with a different method/network config than this run's; {advice}")


# ----------------------------------------------------------------------------------------- one step


def meta_step(
    method: Method,
    optimizer: torch.optim.Optimizer,
    sampler: MetaBatchSampler,
    dist_ctx: DistContext,
    stop: Callable[[], bool] | None = None,
) -> tuple[float, bool]:
    """One meta-update; returns (meta-loss over the whole meta-batch, whether any rank asked to stop).

    ``stop`` is asked after the update and shared with the loss's all-reduce, so all ranks stop after
    the same iteration (one rank leaving the loop early would leave the others hanging in a collective).

    Each rank computes the loss of its share of the tasks scaled by share / M; summed over ranks that is
    the mean over all M tasks, so the summed gradients equal the single-process meta-gradient.
    """
    idx = sampler.sample_indices()
    m = len(idx.tasks)
    part = dist_ctx.share(m)
    n = part.stop - part.start
    optimizer.zero_grad(set_to_none=True)
    local = 0.0
    if n:
        batch_a, batch_b = sampler.load(idx, part)
        loss = method.training_loss(batch_a, batch_b) * (n / m)
        loss.backward()
        local = float(loss.detach())
    dist_ctx.all_reduce_gradients(method.module)
    method.after_backward()
    optimizer.step()
    total, stops = dist_ctx.all_reduce_sum([local, 1.0 if stop is not None and stop() else 0.0])
    return total, stops > 0


def validation_loss(
    method: Method, sampler: MetaBatchSampler, batches: int, dist_ctx: DistContext
) -> tuple[float, float | None]:
    """Mean meta-loss of ``batches`` meta-batches of held-out tasks, and the same when each task is
    conditioned on another task's demo (None for a one-task meta-batch).

    The second number is the check that the policy uses its demonstration: a policy that ignores the
    demo scores the same with a wrong one, so "val" far below "val_other_demo" means one-shot adaptation
    works, and the two together mean the policy has learned only what all tasks share.
    """
    method.module.eval()
    total, total_other = 0.0, 0.0
    try:
        for _ in range(batches):
            idx = sampler.sample_indices()
            m = len(idx.tasks)
            part = dist_ctx.share(m)
            n = part.stop - part.start
            if not n:
                continue
            batch_a, batch_b = sampler.load(idx, part)
            total += float(method.training_loss(batch_a, batch_b).detach()) * n / m
            if m > 1:
                other_a = sampler.load_adaptation(other_task_demos(idx, sampler.shots), part)
                total_other += float(method.training_loss(other_a, batch_b).detach()) * n / m
    finally:
        method.module.train()
    summed = dist_ctx.all_reduce_sum([total, total_other])
    return summed[0] / batches, (summed[1] / batches if sampler.meta_batch > 1 else None)


# -------------------------------------------------------------------------------------------- trainer


@dataclasses.dataclass
class Progress:
    iteration: int = 0
    best_val: float = math.inf
    seconds: float = 0.0  # training wall time over all sessions of this run
    last_train: float | None = None
    last_val: float | None = None
    last_val_other: float | None = None  # validation loss adapted on other tasks' demos


class Trainer:
    """One training session of a run directory (fresh or resumed)."""

    def __init__(self, args: argparse.Namespace, dist_ctx: DistContext) -> None:
        self.args = args
        self.dist = dist_ctx
        self.out: Path = args.out
        self.progress = Progress()
        self.stop_requested = False
        self.init_weights_info: dict[str, Any] | None = None  # where --init-weights took the weights from
        self._init_weights: dict[str, torch.Tensor] | None = None  # those weights, until loaded

    # ------------------------------------------------------------------------------------ setup
    def _config(self) -> tuple[MilConfig, Path | None]:
        """The run's config and the checkpoint to resume from (None: fresh start)."""
        args = self.args
        latest = self.out / LATEST
        resume_from, saved_config = None, None
        if latest.exists():
            if not args.resume:
                raise TrainError(
                    f"{self.out} already holds a run ({latest}); pass --resume to continue it or choose a new --out"
                )
            resume_from = latest
            saved_config = read_checkpoint_config(latest)[0]
        elif args.resume:
            self._say(f"nothing to resume in {self.out}: starting a new run")
        if args.config is not None:
            base = MilConfig.load(args.config).to_dict()
        elif saved_config is not None:
            base = saved_config.to_dict()
        else:
            raise TrainError("--config is required for a new run")
        base = apply_overrides(base, args.overrides)
        if args.iterations is not None:
            base.setdefault("train", {})["iterations"] = args.iterations
        config = MilConfig.from_dict(base)
        if config.method == "random":
            raise TrainError("method 'random' has nothing to train")
        if saved_config is not None:
            config = inherit_state_statistics(config, saved_config)
            require_same_model(
                saved_config,
                config,
                str(resume_from),
                "resume with the same --config (or none) or choose a new --out",
            )
        if config.train.iterations < 0:
            raise ConfigError("train.iterations must be >= 0")
        if args.init_weights is not None:
            if resume_from is not None:
                raise TrainError(
                    f"--init-weights starts a new run, but {self.out} already holds one; resume it without "
                    "--init-weights or choose a new --out"
                )
            config = self._read_init_weights(args.init_weights, config)  # before the dataset: fail in seconds
        return config, resume_from

    def _read_init_weights(self, path: Path, config: MilConfig) -> MilConfig:
        """Read and check the weights a new run starts from (``--init-weights``); loaded in ``run``.
        Returns ``config`` with the state statistics those weights were trained with.

        Why: a checkpoint without its optimiser state (``best/``, or the shipped one) cannot be resumed,
        yet training it on is the cheap way to ask whether more iterations help.
        """
        weights, saved, extra = read_checkpoint(path)
        config = inherit_state_statistics(config, saved)
        require_same_model(
            saved, config, f"--init-weights {path}", "the weights would not fit: use its config.json as --config"
        )
        self._init_weights = weights
        self.init_weights_info = {"path": str(path), "iteration": extra.get("iteration")}
        return config

    def _dataset(self, config: MilConfig) -> MetaDataset:
        """Rank 0 builds (or validates) the cache; the others then open it, never building concurrently."""
        kwargs = {"cache_root": self.args.cache, "progress": self.dist.is_main}
        error: Exception | None = None
        dataset = None
        if self.dist.is_main:
            try:
                dataset = load_dataset(self.args.demos, config.data, rebuild=self.args.rebuild_cache, **kwargs)
            except USER_ERRORS as exc:
                error = exc
        if not self.dist.all_agree(error is None):
            if error is not None:
                raise error
            raise DatasetError("rank 0 could not load the dataset (see its error)")
        if dataset is None:
            dataset = load_dataset(self.args.demos, config.data, **kwargs)
        check_compatible(dataset, config.network)
        return dataset

    def _samplers(self, config: MilConfig, dataset: MetaDataset) -> tuple[MetaBatchSampler, MetaBatchSampler | None]:
        seed, maml = config.train.seed, config.maml
        split = dataset.split_tasks(config.data.val_fraction, seed)
        if config.data.train_tasks is not None:
            split = limit_train_tasks(split, config.data.train_tasks)
        if maml.meta_batch < self.dist.world_size:
            raise TrainError(
                f"maml.meta_batch={maml.meta_batch} is smaller than the {self.dist.world_size} "
                "ranks: every rank needs at least one task"
            )
        train = MetaBatchSampler(
            dataset,
            split.train,
            maml.meta_batch,
            maml.shots,
            config.data.frames_per_demo,
            seed=seed,
            device=self.dist.device,
            name="train",
            colour_augmentation=config.data.colour_augmentation,
        )
        n_val = sum(len(dataset.demos_of(t)) >= maml.shots + 1 for t in split.val)
        val = None
        if n_val and self.args.val_batches > 0:
            val = MetaBatchSampler(
                dataset,
                split.val,
                min(maml.meta_batch, n_val),
                maml.shots,
                None,
                seed=seed + 1,
                device=self.dist.device,
                name="val",
            )
        else:
            self._say("warning: no validation tasks with enough demos: no val loss, no best/ checkpoint")
        self._say(
            f"tasks: {len(split.train)} train, {len(split.val)} val, {len(split.held_out)} held out "
            f"(split by {split.source})"
        )
        return train, val

    # ------------------------------------------------------------------------------------- run
    def run(self) -> int:
        config, resume_from = self._config()
        self.config = config
        torch.manual_seed(config.train.seed)
        np.random.seed(config.train.seed)
        dataset = self._dataset(config)
        self._say(dataset.summary())
        self.train_sampler, self.val_sampler = self._samplers(config, dataset)
        if config.network.normalise_state and config.network.state_mean is None:
            mean, std = state_statistics(dataset, self.train_sampler.tasks.tolist())
            network = dataclasses.replace(config.network, state_mean=mean, state_std=std)
            self.config = config = dataclasses.replace(config, network=network)
            self._say(f"states standardised with the statistics of {len(self.train_sampler.tasks)} training tasks")
        self.method = build_method(config)
        self.method.module.to(self.dist.device)
        self.optimizer = torch.optim.Adam(self.method.module.parameters(), lr=config.maml.meta_lr)
        if resume_from is not None:
            self._restore(resume_from)
        elif self._init_weights is not None:
            load_into(self.method.module, self._init_weights, str(self.args.init_weights))
            self._init_weights = None
            self._say(
                f"weights from {self.args.init_weights} (its iteration {self.init_weights_info['iteration']}); "
                "the optimiser starts fresh"
            )
        self.dist.broadcast_module(self.method.module)
        self.dataset_info = {
            "demos": str(self.args.demos),
            "family": dataset.family,
            "horizon": dataset.horizon,
            "image_size": list(dataset.image_size),
            "num_tasks": dataset.num_tasks,
            "num_demos": dataset.num_demos,
        }
        log = None
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(config.to_json() + "\n")
            log = TrainLog(self.out, self.progress.iteration)
            drop_later_snapshots(self.out, self.progress.iteration)
        start = self.progress.iteration
        if start:
            self._say(f"resuming {self.out} at iteration {start}")
        self._say(
            f"training {config.method} on {self.dist.device} x{self.dist.world_size} for "
            f"{config.train.iterations} iterations"
        )
        maml = config.maml
        if maml.meta_lr_schedule == "cosine":
            total = config.train.iterations
            if maml.meta_lr_decay_from >= total:
                self._say(
                    f"warning: maml.meta_lr_decay_from ({maml.meta_lr_decay_from}) >= train.iterations ({total}): "
                    f"the meta learning rate stays {maml.meta_lr:g}"
                )
            else:
                self._say(
                    f"meta learning rate {maml.meta_lr:g} until iteration {maml.meta_lr_decay_from}, then a "
                    f"cosine down to {maml.meta_lr * maml.meta_lr_final:g} at {total}"
                )
        try:
            with self._signals():
                interrupted = self._loop(log)
        finally:
            if log is not None:
                log.close()
        if self.dist.is_main:
            self._save(self.out / LATEST, with_state=True)
            title = f"{config.method} on {dataset.family}"
            png = plot_curve(self.out / CSV_NAME, self.out / CURVE_NAME, title)
            done = self.progress.iteration - start
            rate = f"{self.session_seconds / done:.3f} s/iteration" if done else "no iterations"
            state = "interrupted" if interrupted else "finished"
            self._say(
                f"{state} at iteration {self.progress.iteration} ({done} this session, {rate}); "
                f"checkpoint {self.out / LATEST}" + (f", curve {png}" if png else "")
            )
        return EXIT_INTERRUPTED if interrupted else 0

    def _loop(self, log: TrainLog | None) -> bool:
        """Train until train.iterations; True when stopped early by a signal."""
        cfg, p = self.config.train, self.progress
        total = cfg.iterations
        window: list[float] = []
        bar = tqdm(
            total=total,
            initial=min(p.iteration, total),
            unit="it",
            desc=f"train {self.config.method}",
            disable=not self.dist.is_main,
            dynamic_ncols=True,
            file=sys.stderr,
        )
        session_start, seconds_before = time.monotonic(), p.seconds
        self.session_seconds = 0.0
        interrupted = False
        try:
            while p.iteration < total:
                lr = self.config.maml.meta_lr_at(p.iteration, total)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                loss, stop = meta_step(
                    self.method, self.optimizer, self.train_sampler, self.dist, stop=lambda: self.stop_requested
                )
                p.iteration += 1
                if not math.isfinite(loss):
                    raise TrainError(
                        f"meta-loss became {loss} at iteration {p.iteration}; "
                        "lower maml.meta_lr or maml.inner_lr (checkpoint left at the last save)"
                    )
                window.append(loss)
                p.last_train = loss
                val = val_other = None
                due = p.iteration % cfg.val_every == 0 or p.iteration == total
                if self.val_sampler is not None and due:
                    self.val_sampler.rng = np.random.default_rng(cfg.seed + 1)  # same batches every time
                    val, val_other = validation_loss(self.method, self.val_sampler, self.args.val_batches, self.dist)
                    p.last_val, p.last_val_other = val, val_other
                self.session_seconds = time.monotonic() - session_start
                p.seconds = seconds_before + self.session_seconds
                periodic = p.iteration % cfg.checkpoint_every == 0 and p.iteration < total
                if periodic:
                    self._check_sync()
                if self.dist.is_main:
                    if log is not None and (
                        p.iteration % cfg.log_every == 0 or val is not None or p.iteration == total or stop
                    ):
                        log.log(p.iteration, float(np.mean(window)), val, p.seconds, val_other)
                        window = []
                    if val is not None and val < p.best_val:
                        p.best_val = val
                        self._save(self.out / BEST, with_state=False)
                    if periodic:
                        self._save(self.out / LATEST, with_state=True)
                    if cfg.snapshot_every and p.iteration % cfg.snapshot_every == 0:
                        self._save(snapshot_path(self.out, p.iteration), with_state=False)
                    bar.update(1)
                    shown = {"loss": f"{loss:.4g}"}
                    if self.config.maml.meta_lr_schedule != "constant":
                        shown["lr"] = f"{lr:.2g}"
                    if p.last_val is not None:
                        shown["val"] = f"{p.last_val:.4g}"
                    if p.last_val_other is not None:
                        shown["val_other_demo"] = f"{p.last_val_other:.4g}"
                    bar.set_postfix(shown)
                if stop:
                    interrupted = True
                    break
        finally:
            bar.close()
        if not interrupted:
            self._check_sync()
        return interrupted

    # ------------------------------------------------------------------------------ checkpoints
    def _check_sync(self) -> None:
        diff = self.dist.max_divergence(self.method.module)
        if diff > 1e-5:
            raise TrainError(f"ranks' parameters diverged by {diff:g}: gradients were not reduced alike")

    def _save(self, path: Path, with_state: bool) -> None:
        p = self.progress
        extra = {
            "iteration": p.iteration,
            "train_loss": p.last_train,
            "val_loss": p.last_val,
            "val_other_demo_loss": p.last_val_other,
            "best_val_loss": None if math.isinf(p.best_val) else p.best_val,
            "world_size": self.dist.world_size,
            "dataset": self.dataset_info,
        }
        if self.init_weights_info is not None:
            extra["init_weights"] = self.init_weights_info
        state = None
        if with_state:
            opt_tensors, opt_meta = optimizer_to_flat(self.optimizer)
            rng_tensors, rng_meta = rng_to_flat(self._sampler_rngs())
            counters = {
                "iteration": p.iteration,
                "best_val": None if math.isinf(p.best_val) else p.best_val,
                "seconds": p.seconds,
                "optimizer": opt_meta,
                "rng": rng_meta,
                "last_train": p.last_train,
                "last_val": p.last_val,
            }
            state = ({**opt_tensors, **rng_tensors}, counters)
        save_checkpoint(path, self.method.module.state_dict(), self.config, extra, trainer_state=state)

    def _restore(self, path: Path) -> None:
        weights, _, extra = read_checkpoint(path)
        load_into(self.method.module, weights, str(path))
        self.init_weights_info = extra.get("init_weights")  # kept in every later save of the run
        tensors, counters = read_trainer_state(path)
        optimizer_from_flat(self.optimizer, tensors, counters["optimizer"])
        rng_from_flat(self._sampler_rngs(), tensors, counters["rng"])
        p = self.progress
        p.iteration = int(counters["iteration"])
        p.best_val = math.inf if counters.get("best_val") is None else float(counters["best_val"])
        p.seconds = float(counters.get("seconds", 0.0))
        p.last_train, p.last_val = counters.get("last_train"), counters.get("last_val")

    # ---------------------------------------------------------------------------------- helpers
    def _sampler_rngs(self) -> dict[str, np.random.Generator]:
        """The training sampler's random streams, saved with a checkpoint so --resume draws on alike."""
        return {"train_sampler": self.train_sampler.rng, "train_sampler_colour": self.train_sampler.colour_rng}

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """First Ctrl-C/SIGTERM: stop after this iteration and save; second Ctrl-C: abort at once."""

        def handler(signum: int, frame: object) -> None:
            if self.stop_requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.stop_requested = True
            self._say(
                f"\n{signal.Signals(signum).name}: saving a checkpoint after this iteration (Ctrl-C again to abort)"
            )

        previous = {}
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, handler)
        try:
            yield
        finally:
            for sig, h in previous.items():
                signal.signal(sig, h)

    def _say(self, message: str) -> None:
        if self.dist.is_main:
            tqdm.write(message, file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
