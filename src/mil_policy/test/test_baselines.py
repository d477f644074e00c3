"""Contextual and LSTM baselines: shapes, learning, what of the demo they read; MIL ablations via config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mil_policy.baselines import ContextualMethod, LstmMethod, LstmNetwork
from mil_policy.checkpoint import load_into, read_checkpoint, save_checkpoint
from mil_policy.config import ConfigError, MilConfig
from mil_policy.evaluate import check_compatible
from mil_policy.maml import DemoBatch
from mil_policy.methods import MilMethod, build_method
from mil_sim.families import get_family

ROOT = Path(__file__).resolve().parents[3]
H, W, S, A = 10, 12, 3, 2


@pytest.fixture(autouse=True)
def _one_thread() -> object:
    """Tiny networks: one thread is fastest and does not fight other processes on a shared machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _config(method: str, network: dict[str, Any] | None = None, **maml: Any) -> MilConfig:
    net = {
        "image_width": W,
        "image_height": H,
        "state_dim": S,
        "action_dim": A,
        "conv": [{"filters": 4, "kernel": 3, "stride": 2}],
        "fc": [16],
        "lstm_hidden": 16,
        **(network or {}),
    }
    return MilConfig.from_dict(
        {"method": method, "network": net, "maml": {"inner_steps": 1, "inner_lr": 0.05, "loss": "mse", **maml}}
    )


def _batch(m: int, n: int, t: int = 4, seed: int = 0) -> DemoBatch:
    g = torch.Generator().manual_seed(seed)
    return DemoBatch(
        torch.rand(m, n, t, 3, H, W, generator=g),
        torch.randn(m, n, t, S, generator=g),
        torch.randn(m, n, t, A, generator=g),
        torch.randn(m, n, 2, generator=g),
    )


def _act(policy: Any, steps: int = 3) -> list[np.ndarray]:
    policy.reset()
    rng = np.random.default_rng(0)
    return [policy.act(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), rng.standard_normal(S)) for _ in range(steps)]


@pytest.mark.parametrize("method", ["contextual", "lstm"])
@pytest.mark.parametrize("predict_target", [False, True])
def test_loss_condition_and_act(method: str, predict_target: bool) -> None:
    torch.manual_seed(0)
    m = build_method(_config(method, {"predict_target": predict_target}, shots=2))
    assert isinstance(m, ContextualMethod if method == "contextual" else LstmMethod)
    loss = m.training_loss(_batch(3, 2), _batch(3, 1, seed=1))
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    m.after_backward()
    assert all(p.grad is not None for p in m.module.parameters()), "every parameter takes part in the loss"
    for n in (1, 2):  # one-shot and N-shot
        actions = _act(m.condition(_batch(1, n, seed=2).task(0)))
        assert all(a.shape == (A,) and a.dtype == np.float32 and np.all(np.isfinite(a)) for a in actions)


@pytest.mark.parametrize("method", ["contextual", "lstm"])
def test_training_loss_decreases(method: str) -> None:
    """Task-dependent actions that only the demo reveals: the evaluation demo's actions equal the mean
    brightness of the adaptation demo's images (per task), so fitting them needs the demo channel."""
    torch.manual_seed(0)
    m = build_method(_config(method, meta_batch=4))
    a, b = _batch(4, 1, seed=3), _batch(4, 1, seed=4)
    level = torch.tensor([0.1, 0.4, 0.6, 0.9]).view(4, 1, 1, 1, 1, 1)
    a = DemoBatch(a.images * 0.1 + level, a.states, a.actions, a.targets)
    b = DemoBatch(b.images, b.states, (level.view(4, 1, 1, 1) * 2 - 1).expand(4, 1, 4, A).clone(), b.targets)
    opt = torch.optim.Adam(m.module.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = m.training_loss(a, b)
        loss.backward()
        m.after_backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def _lstm_output(net: LstmNetwork, demo: DemoBatch, query: DemoBatch) -> torch.Tensor:
    with torch.no_grad():
        return net(net.embed(demo), query.images, query.states).actions


@pytest.mark.parametrize(
    ("demo_inputs", "reads_states", "reads_actions"),
    [("full", True, True), ("no_actions", True, False), ("video_only", False, False)],
)
def test_lstm_reads_only_the_granted_demo_inputs(demo_inputs: str, reads_states: bool, reads_actions: bool) -> None:
    torch.manual_seed(0)
    net = build_method(_config("lstm", demo_inputs=demo_inputs)).module
    demo, query = _batch(1, 1).task(0), _batch(1, 1, seed=1).task(0)
    base = _lstm_output(net, demo, query)

    def changed(**field: torch.Tensor) -> bool:
        d = DemoBatch(
            field.get("images", demo.images),
            field.get("states", demo.states),
            field.get("actions", demo.actions),
            demo.targets,
        )
        return not torch.allclose(_lstm_output(net, d, query), base)

    assert changed(images=torch.rand_like(demo.images))
    assert changed(states=torch.randn_like(demo.states)) == reads_states
    assert changed(actions=torch.randn_like(demo.actions)) == reads_actions


def test_contextual_reads_only_the_final_demo_image() -> None:
    torch.manual_seed(0)
    m = build_method(_config("contextual"))
    demo = _batch(1, 1).task(0)
    base = np.stack(_act(m.condition(demo)))
    images = demo.images.clone()
    images[:, :-1] = torch.rand_like(images[:, :-1])
    same = DemoBatch(images, torch.randn_like(demo.states), torch.randn_like(demo.actions), None)
    np.testing.assert_allclose(np.stack(_act(m.condition(same))), base, rtol=1e-6, atol=1e-6)
    images[:, -1] = torch.rand_like(images[:, -1])
    other = DemoBatch(images, demo.states, demo.actions, None)
    assert not np.allclose(np.stack(_act(m.condition(other))), base)


def test_n_shot_averages() -> None:
    """Contextual: the actions of the demos are averaged; LSTM: their embeddings are."""
    torch.manual_seed(0)
    two = _batch(1, 2).task(0)
    firsts = [DemoBatch(two.images[i : i + 1], two.states[i : i + 1], two.actions[i : i + 1]) for i in range(2)]
    ctx = build_method(_config("contextual"))
    singles = [np.stack(_act(ctx.condition(d))) for d in firsts]
    np.testing.assert_allclose(np.stack(_act(ctx.condition(two))), np.mean(singles, axis=0), rtol=1e-5, atol=1e-6)
    lstm = build_method(_config("lstm"))
    with torch.no_grad():
        mean = lstm.module.embed(two).mean(0, keepdim=True)
    torch.testing.assert_close(lstm.condition(two).embedding, mean)


@pytest.mark.parametrize("method", ["contextual", "lstm"])
def test_baseline_checkpoint_round_trip(method: str, tmp_path: Path) -> None:
    cfg = _config(method, {"predict_target": True}, demo_inputs="no_actions")
    m = build_method(cfg)
    save_checkpoint(tmp_path / "c", m.module.state_dict(), cfg)
    state, cfg2, _ = read_checkpoint(tmp_path / "c")
    assert cfg2 == cfg and cfg2.maml.demo_inputs == "no_actions"
    m2 = build_method(cfg2)
    load_into(m2.module, state)
    demo = _batch(1, 1).task(0)
    np.testing.assert_allclose(np.stack(_act(m2.condition(demo))), np.stack(_act(m.condition(demo))))


def test_demo_inputs_without_actions_stay_a_mil_error() -> None:
    """Baselines may be trained on demos without actions; MIL only with the learned loss (section 4.2)."""
    with pytest.raises(ConfigError, match="learned_no_actions"):
        _config("mil", demo_inputs="no_actions")
    with pytest.raises(ConfigError, match="must be one of"):
        _config("lstm", demo_inputs="audio")
    assert _config("lstm", demo_inputs="video_only").maml.demo_inputs == "video_only"
    with pytest.raises(ConfigError, match="lstm_hidden"):
        _config("lstm", {"lstm_hidden": 0})


@pytest.mark.parametrize(
    ("network", "maml"),
    [
        ({"bias_transform_dim": 0}, {}),  # MIL without the bias transformation (Figure 4's ablation)
        ({"two_head": True}, {"inner_loss": "learned_bc"}),  # 2-head (Table 3)
        ({"two_head": True}, {"inner_loss": "learned_no_actions", "demo_inputs": "video_only"}),
    ],
)
def test_mil_ablations_are_config_variants(network: dict[str, Any], maml: dict[str, Any]) -> None:
    torch.manual_seed(0)
    m = build_method(_config("mil", network, **maml))
    assert isinstance(m, MilMethod)
    names = dict(m.module.named_parameters())
    assert ("bias_transform" in names) == (m.config.network.bias_transform_dim > 0)
    assert ("head_pre.weight" in names) == m.config.network.two_head
    loss = m.training_loss(_batch(2, 1), _batch(2, 1, seed=1))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(np.all(np.isfinite(a)) for a in _act(m.condition(_batch(1, 1).task(0))))


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "config").glob("train_*.yaml")))
def test_presets_build(name: str) -> None:
    """Every shipped training preset loads, builds its method and fits the family it trains on (images,
    state, actions, horizon): a typo or a wrong state_dim fails here, not hours in."""
    cfg = MilConfig.load(ROOT / "config" / f"{name}.yaml")
    assert build_method(cfg).config is cfg
    check_compatible(cfg, get_family(cfg.data.family, **cfg.data.family_config), name)
