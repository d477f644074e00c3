"""Typed configuration of the policy network, the MAML meta-learner and training (one source of truth).

Presets follow appendix A of the seed paper (``*_paper``) and add CPU-sized variants (``*_cpu``) that
give up image resolution, inner steps and frames per demo to make a meta-iteration take well under a
second on two cores. Configs load from / save to YAML and JSON, so a checkpoint carries the exact
config that built its network.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

InnerLoss = Literal["bc", "learned_bc", "learned_no_actions"]
DemoInputs = Literal["full", "no_actions", "video_only"]
DEMO_INPUTS: tuple[str, ...] = ("full", "no_actions", "video_only")
# Methods that feed the demo into the network instead of adapting on it (mil_policy.baselines).
BASELINE_METHODS: tuple[str, ...] = ("contextual", "lstm")


class ConfigError(ValueError):
    """A configuration that cannot build or train a network (message says which field and why)."""


@dataclass
class ConvLayer:
    filters: int
    kernel: int
    stride: int


@dataclass
class NetworkConfig:
    """Appendix A architectures: conv stack + layer norm + ReLU, spatial soft-argmax, FC stack."""

    image_width: int = 100
    image_height: int = 90
    image_channels: int = 3
    state_dim: int = 11
    action_dim: int = 6
    conv: list[ConvLayer] = field(
        default_factory=lambda: [
            ConvLayer(64, 3, 2),
            ConvLayer(64, 3, 2),
            ConvLayer(64, 3, 2),
            ConvLayer(64, 3, 1),
            ConvLayer(64, 3, 1),
        ]
    )
    spatial_softmax: bool = True  # False: flatten the last conv map (reaching, appendix A.1)
    # Initial value of a learned softmax temperature (Levine et al. 2016's spatial softmax); None: no
    # temperature, as in checkpoints from before it existed. After layer norm the activations are O(1),
    # so at temperature 1 the softmax over the map is nearly uniform and every feature point sits near
    # the image centre: measured on reaching (`diagnose`), the median channel's peak probability was
    # 0.006-0.008 against 0.003 for a flat softmax. A low start (0.1-0.2) makes the points track objects.
    softmax_temperature: float | None = None
    # Nonlinearity after every conv and hidden FC layer. The paper uses ReLU; "elu" keeps a gradient for
    # units a phase of demo-ignoring training has switched off (measured on reaching with `diagnose`:
    # 7 and 33 of 100 FC units never positive on 2000 held-out frames, and a contextual baseline went
    # constant), so they can still learn once the demonstration starts to matter. But on the pushing
    # testbed ELU alone took a blind network's closed-loop cloning from 35/40 to 18/40 (docs/results.md,
    # "clones the pusher worse"), so it is no free choice for a closed-loop pusher; yet placing's
    # recipe with ReLU never learned to read the demo (one seed), and on reaching ReLU succeeded more
    # often over five seeds each (37.9% against 17.5%, p = 0.032; "ReLU in the one-shot runs"). The presets
    # choose per family: ELU for placing, ReLU for pushing; reaching's preset stays ELU only because the
    # documented reaching rows were made with it (new runs: --set network.activation=relu).
    activation: Literal["relu", "elu"] = "relu"
    fc: list[int] = field(default_factory=lambda: [100, 100])  # hidden layers; the output layer is extra
    bias_transform_dim: int = 20  # 0 disables the bias transformation (section 5)
    bias_image: bool = False  # pushing: a learned image concatenated to the input (appendix A.2)
    two_head: bool = False  # section 4.1: separate pre-update head = learned inner loss
    predict_target: bool = False  # placing: auxiliary 2-D target regression fed into the FC layers
    target_dim: int = 2
    lstm_hidden: int = 512  # LSTM baseline only: units of the demo encoder (appendix A.1-A.3 use 512)
    # Standardise the robot state before it meets the FC layers: (state - state_mean) / state_std per
    # entry, with the statistics of the training split's demos, which the trainer computes and stores
    # here (so the checkpoint's config.json carries them). The reference implementation of the paper
    # does this (its data generator's scale and bias); without it, entries in metres sit beside joint
    # velocities in rad/s, and on the pushing testbed an MLP cloning the expert from the true state
    # succeeded 6 of 40 times raw against 29 of 40 standardised (`clone_state`; docs/results.md,
    # "Standardised robot state").
    normalise_state: bool = False
    state_mean: list[float] | None = None
    state_std: list[float] | None = None
    # Diagnostic ablation: every frame is replaced by a black image before the convolutions, so the
    # network, its training and its evaluation stay the same but only the state informs the actions.
    # On a testbed whose state carries the task (pushing's ``privileged_state``) it tells apart a learner
    # that cannot clone the expert from one that the images lead astray (docs/results.md, "clones the
    # pusher worse").
    blind: bool = False

    def __post_init__(self) -> None:
        self.conv = [c if isinstance(c, ConvLayer) else ConvLayer(**c) for c in self.conv]
        for name in ("image_width", "image_height", "image_channels", "action_dim"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"network.{name} must be positive, got {getattr(self, name)}")
        if self.lstm_hidden <= 0:
            raise ConfigError(f"network.lstm_hidden must be positive, got {self.lstm_hidden}")
        if self.activation not in ("relu", "elu"):
            raise ConfigError(f"network.activation must be 'relu' or 'elu', got {self.activation!r}")
        if self.softmax_temperature is not None and not self.softmax_temperature > 0:
            raise ConfigError(f"network.softmax_temperature must be positive, got {self.softmax_temperature}")
        if self.state_dim < 0 or self.bias_transform_dim < 0:
            raise ConfigError("network.state_dim and network.bias_transform_dim must be >= 0")
        if not self.conv:
            raise ConfigError("network.conv needs at least one layer")
        if any(c.filters <= 0 or c.kernel <= 0 or c.stride <= 0 for c in self.conv):
            raise ConfigError(f"network.conv layers need positive filters/kernel/stride: {self.conv}")
        if any(h <= 0 for h in self.fc):
            raise ConfigError(f"network.fc sizes must be positive: {self.fc}")
        self._check_state_statistics()

    def _check_state_statistics(self) -> None:
        if (self.state_mean is None) != (self.state_std is None):
            raise ConfigError("network.state_mean and network.state_std come together: give both or neither")
        if self.state_mean is None or self.state_std is None:
            return
        if not self.normalise_state:
            raise ConfigError("network.state_mean/state_std are set but network.normalise_state is false")
        self.state_mean = [float(v) for v in self.state_mean]
        self.state_std = [float(v) for v in self.state_std]
        for name, values in (("state_mean", self.state_mean), ("state_std", self.state_std)):
            if len(values) != self.state_dim:
                raise ConfigError(f"network.{name} has {len(values)} entries, network.state_dim is {self.state_dim}")
        if not all(math.isfinite(v) for v in self.state_mean) or not all(
            math.isfinite(v) and v > 0 for v in self.state_std
        ):
            raise ConfigError("network.state_mean must be finite and network.state_std finite and positive")


@dataclass
class MamlConfig:
    """Meta-learning hyper-parameters (section 4 and appendix A)."""

    inner_steps: int = 5
    inner_lr: float = 0.005
    inner_grad_clip: float | None = 30.0  # element-wise clip of inner gradients; None disables
    first_order: bool = False  # True drops the second-order terms of the meta-gradient
    # Meta-learn one inner step size per parameter tensor and inner step, starting at inner_lr (the
    # per-layer step sizes of MAML++; not in the paper, whose inner step size is one fixed alpha).
    learn_inner_lr: bool = False
    # Per-parameter multipliers of inner_lr, by name prefix (the longest matching prefix wins), e.g.
    # {"convs.0.weight": 5, "target_head": 0.2}: with learn_inner_lr, where the learned step sizes start.
    # Why: on reaching, the learned step sizes ended 5-8x larger on the first convolutions and 5x smaller
    # on the FC layers and the target head: adaptation by what the target looks like, not by shifting
    # the estimate toward where the demo's target was (which does not transfer to a new scene).
    inner_lr_scale: dict[str, float] = field(default_factory=dict)
    meta_lr: float = 1e-3
    # How the meta learning rate moves over training: "constant" (the paper: Adam at meta_lr throughout)
    # or "cosine": meta_lr until meta_lr_decay_from, then half a cosine down to meta_lr * meta_lr_final at
    # train.iterations. Why: late in a placing run at a constant rate, closed-loop success swings by up to
    # 23 of 80 validation trials between snapshots 1000 iterations apart, and the mean of those snapshots'
    # weights is worse than any of them (docs/results.md, "averaged weights"): the late steps move the
    # weights between basins rather than settling in one. Measured once (placing, seed 1, decay from 8000 to
    # 5%): late snapshots higher on validation, the chosen one no better on test ("decayed late").
    meta_lr_schedule: Literal["constant", "cosine"] = "constant"
    meta_lr_decay_from: int = 0
    meta_lr_final: float = 0.0
    meta_grad_clip: float | None = None  # element-wise clip of the meta-gradient
    meta_batch: int = 12
    shots: int = 1  # demos in the inner update (N-shot averages their gradient)
    loss: Literal["mse", "l1l2"] = "l1l2"  # placing: l1 + l2/100
    inner_loss: InnerLoss = "bc"
    demo_inputs: DemoInputs = "full"  # what the adaptation demo provides
    target_loss_weight: float = 1.0  # weight of the auxiliary target regression (if predicted)
    # The same regression on the *unadapted* network, as a fraction of target_loss_weight (0: off, the
    # paper). See MetaLearner.unadapted_target_loss for why.
    unadapted_target_weight: float = 0.0
    # Multiplies the mean (over frames and action dims) loss. The paper's step sizes were tuned for a
    # scaled loss: the authors' code computes mean((m * (a - a_hat))^2) with a loss multiplier m of 100
    # for reaching and 50 for pushing, i.e. loss_scale = m^2 = 10000 / 2500 here. With 1 the inner step
    # is so small that adaptation changes nothing (measured on reaching: docs/results.md). For placing
    # (no code released) the presets use horizon x action_dim, equation 2's per-demo sum.
    loss_scale: float = 1.0
    # Per action dimension weights of the action loss (normalised to mean 1, so loss_scale keeps its
    # meaning), or None: all 1. Why: an action of mixed units, e.g. a tool twist in m/s and rad/s with
    # limits 0.4 and 2.0, gives an unweighted squared error 25x less say to where the tip goes than to
    # how it turns; weights of 1 / limit^2 make every dimension count by its share of its range.
    action_weights: list[float] | None = None

    def meta_lr_at(self, iteration: int, total: int) -> float:
        """The meta learning rate of the step taken after ``iteration`` of ``total`` iterations.

        A function of the iteration alone, so a resumed run continues its schedule exactly with no
        scheduler state to save; a run resumed with a larger ``train.iterations`` re-stretches the cosine
        over the new total, so its rate jumps back up at the resume.
        """
        start = self.meta_lr_decay_from
        if self.meta_lr_schedule == "constant" or iteration < start or total <= start:
            return self.meta_lr
        progress = min((iteration - start) / (total - start), 1.0)
        final = self.meta_lr * self.meta_lr_final
        return final + (self.meta_lr - final) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def inner_lr_of(self, param_name: str) -> float:
        """inner_lr times the inner_lr_scale entry of the longest prefix of ``param_name`` (1 if none)."""
        hits = [k for k in self.inner_lr_scale if param_name.startswith(k)]
        return self.inner_lr * (self.inner_lr_scale[max(hits, key=len)] if hits else 1.0)

    def __post_init__(self) -> None:
        if self.inner_steps < 0 or self.inner_lr < 0:
            raise ConfigError("maml.inner_steps and maml.inner_lr must be >= 0")
        bad = {k: v for k, v in self.inner_lr_scale.items() if not (isinstance(v, int | float) and v >= 0)}
        if bad:
            raise ConfigError(f"maml.inner_lr_scale values must be numbers >= 0, got {bad}")
        if self.meta_batch <= 0 or self.shots <= 0 or self.meta_lr <= 0:
            raise ConfigError("maml.meta_batch, maml.shots and maml.meta_lr must be positive")
        if self.meta_lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"maml.meta_lr_schedule must be 'constant' or 'cosine', got {self.meta_lr_schedule!r}")
        if not (isinstance(self.meta_lr_decay_from, int) and self.meta_lr_decay_from >= 0):
            raise ConfigError(f"maml.meta_lr_decay_from must be an iteration >= 0, got {self.meta_lr_decay_from!r}")
        if not 0.0 <= self.meta_lr_final <= 1.0:
            raise ConfigError(f"maml.meta_lr_final is a fraction of meta_lr in [0, 1], got {self.meta_lr_final!r}")
        if self.action_weights is not None and (
            not self.action_weights or not all(isinstance(w, int | float) and w > 0 for w in self.action_weights)
        ):
            raise ConfigError(f"maml.action_weights must be positive numbers, got {self.action_weights}")
        if self.demo_inputs != "full" and self.inner_loss != "learned_no_actions":
            raise ConfigError(
                f"demo_inputs={self.demo_inputs!r} has no actions to imitate: it needs "
                "inner_loss='learned_no_actions' (section 4.2, two heads)"
            )


@dataclass
class DataConfig:
    """How demos become training sequences."""

    family: str = "placing"
    family_config: dict[str, Any] = field(default_factory=dict)  # overrides of the family's config
    horizon: int = 30  # frames per demo after subsampling (appendix A.3)
    # Train on a random subset of frames per demo (frame 0 always kept: it feeds the target head).
    frames_per_demo: int | None = None
    val_fraction: float = 0.1
    # Meta-train on only the first N training tasks (all their demos), for success-vs-dataset-size
    # curves like the paper's Figure 4 from one demo directory; validation tasks are unchanged.
    train_tasks: int | None = None
    # Recolour each training task (a random hue rotation, the same for its adaptation and evaluation
    # demos) so that few hundred tasks cannot be memorised; see colour_augment.py. Validation: raw.
    colour_augmentation: bool = False

    def __post_init__(self) -> None:
        if self.train_tasks is not None and self.train_tasks < 1:
            raise ConfigError(f"data.train_tasks must be at least 1, got {self.train_tasks}")
        if self.horizon <= 0:
            raise ConfigError(f"data.horizon must be positive, got {self.horizon}")
        if self.frames_per_demo is not None and not 1 <= self.frames_per_demo <= self.horizon:
            raise ConfigError(f"data.frames_per_demo must be in [1, horizon={self.horizon}]")


@dataclass
class TrainConfig:
    iterations: int = 30000
    seed: int = 0
    log_every: int = 10
    val_every: int = 200
    checkpoint_every: int = 500
    # Keep the weights every N iterations in OUT/snapshots/iter_NNNNNN/ (0: none). Why: the validation
    # loss picked poor placing checkpoints twice; ``select_checkpoint`` picks among snapshots by
    # closed-loop success on validation tasks instead. ~0.1 MB each for the placing presets.
    snapshot_every: int = 0
    vectorized: bool | None = None  # torch.func.vmap over tasks; None: on GPU only
    device: str = "auto"  # auto: cuda when available
    # vmap over tasks wins on GPU; on CPU grouped convolutions make it slower than the loop (bench/).

    def __post_init__(self) -> None:
        for name in ("log_every", "val_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        if self.snapshot_every < 0:
            raise ConfigError(f"train.snapshot_every must be >= 0 (0: no snapshots), got {self.snapshot_every}")


def _maml_from_dict(d: dict[str, Any], method: str) -> MamlConfig:
    """MamlConfig of a config file; a baseline may name any demo_inputs.

    MamlConfig refuses demo inputs without actions unless MIL's inner loss can do without them; the
    baselines read the demo through their network instead (the LSTM encodes only what demo_inputs
    grants, Table 1 of the seed paper), so for them the value is checked here and set after the fact.
    """
    demo_inputs = d.get("demo_inputs", "full")
    if method not in BASELINE_METHODS or demo_inputs == "full":
        return MamlConfig(**d)
    if demo_inputs not in DEMO_INPUTS:
        raise ConfigError(f"maml.demo_inputs must be one of {', '.join(DEMO_INPUTS)}, got {demo_inputs!r}")
    maml = MamlConfig(**{**d, "demo_inputs": "full"})
    maml.demo_inputs = demo_inputs
    return maml


@dataclass
class MilConfig:
    network: NetworkConfig = field(default_factory=NetworkConfig)
    maml: MamlConfig = field(default_factory=MamlConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    method: Literal["mil", "contextual", "lstm", "random"] = "mil"

    def __post_init__(self) -> None:
        if self.maml.inner_loss != "bc" and not self.network.two_head:
            raise ConfigError(f"inner_loss={self.maml.inner_loss!r} needs network.two_head=true (section 4.1)")
        weights = self.maml.action_weights
        if weights is not None and len(weights) != self.network.action_dim:
            raise ConfigError(
                f"maml.action_weights has {len(weights)} entries, network.action_dim is {self.network.action_dim}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> MilConfig:
        known = {f.name for f in dataclasses.fields(MilConfig)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown config sections {sorted(unknown)}; expected {sorted(known)}")
        method = d.get("method", "mil")
        try:
            return MilConfig(
                network=NetworkConfig(**d.get("network", {})),
                maml=_maml_from_dict(dict(d.get("maml", {})), method),
                data=DataConfig(**d.get("data", {})),
                train=TrainConfig(**d.get("train", {})),
                method=method,
            )
        except TypeError as exc:  # an unknown field inside a section
            raise ConfigError(f"bad config: {exc}") from exc

    @staticmethod
    def load(path: str | Path) -> MilConfig:
        """Load a YAML / JSON preset, resolving its ``base:`` chain (see :func:`read_preset`)."""
        return MilConfig.from_dict(read_preset(path))


BASE_KEY = "base"


def read_preset(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A preset file as one mapping, with its ``base:`` preset (a path relative to it) underneath.

    Variants (the video-only, LSTM or contextual version of a preset, the same preset at another image
    size) name their base and list only what differs, so the shared trunk and its reasons live in one
    file. The sections (``network``, ``maml``, ``data``, ``train``) merge field by field; a field's value
    replaces the base's whole, also a mapping such as ``data.family_config`` or ``maml.inner_lr_scale``,
    so a variant never inherits keys it did not ask for. Bases may have bases; a cycle is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist" + (f" (base of {_seen[-1]})" if _seen else ""))
    if path.resolve() in _seen:
        raise ConfigError(f"config {path} is its own base: {' -> '.join(map(str, (*_seen, path.resolve())))}")
    text = path.read_text()
    try:
        d = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from exc
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    base = d.pop(BASE_KEY, None)
    if base is None:
        return d
    if not isinstance(base, str):
        raise ConfigError(f"{path}: {BASE_KEY} must be a file name, got {base!r}")
    merged = read_preset(path.parent / base, (*_seen, path.resolve()))
    for section, value in d.items():
        if isinstance(value, dict) and isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], **value}
        else:
            merged[section] = value
    return merged
