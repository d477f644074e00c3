"""MAML core: hand-computed meta-gradients, clipping, two heads, bias transformation, vmap == loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mil_policy.config import ConfigError, ConvLayer, MamlConfig, MilConfig, NetworkConfig
from mil_policy.maml import DemoBatch, MetaLearner, action_loss, parameters_of
from mil_policy.network import PolicyNetwork, PolicyOutput, SpatialSoftArgmax


@pytest.fixture(autouse=True)
def _float64() -> object:
    """Exact comparisons need double precision; restore the default for other test modules."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


class ScalarPolicy(nn.Module):
    """a = w * s: small enough to differentiate MAML by hand."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def post_update_only(self) -> set[str]:
        return set()

    def forward(self, images: torch.Tensor, states: torch.Tensor) -> PolicyOutput:
        return PolicyOutput(actions=self.w * states, pre_head=None, target=None)


def _scalar_demo(x: float, y: float) -> DemoBatch:
    """One demo, one frame: state x, action y."""
    return DemoBatch(torch.zeros(1, 1, 1, 1, 1), torch.tensor([[[x]]]), torch.tensor([[[y]]]))


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_matches_hand_computation(first_order: bool) -> None:
    w, alpha, (xa, ya), (xb, yb) = 0.7, 0.1, (1.5, 2.0), (-0.8, 0.3)
    net = ScalarPolicy(w)
    learner = MetaLearner(
        net, MamlConfig(inner_steps=1, inner_lr=alpha, inner_grad_clip=None, loss="mse", first_order=first_order)
    )
    loss = learner.task_meta_loss(parameters_of(net), _scalar_demo(xa, ya), _scalar_demo(xb, yb))
    loss.backward()
    g_inner = 2 * xa * (w * xa - ya)
    w1 = w - alpha * g_inner
    outer = 2 * (w1 * xb - yb) * xb
    expected = outer if first_order else outer * (1 - 2 * alpha * xa**2)
    assert loss.item() == pytest.approx((w1 * xb - yb) ** 2)
    assert net.w.grad.item() == pytest.approx(expected, rel=1e-10)


def test_learned_inner_step_size_gets_the_hand_computed_meta_gradient() -> None:
    """learn_inner_lr: alpha = exp(log_alpha) starts at inner_lr and dL/dlog_alpha = alpha dL/dalpha."""
    w, alpha, (xa, ya), (xb, yb) = 0.7, 0.1, (1.5, 2.0), (-0.8, 0.3)
    net = ScalarPolicy(w)
    learner = MetaLearner(
        net, MamlConfig(inner_steps=1, inner_lr=alpha, inner_grad_clip=None, loss="mse", learn_inner_lr=True)
    )
    log_lr = net.get_parameter("inner_log_lr.w")
    assert log_lr.shape == (1,) and log_lr.exp().item() == pytest.approx(alpha)
    loss = learner.task_meta_loss(parameters_of(net), _scalar_demo(xa, ya), _scalar_demo(xb, yb))
    loss.backward()
    g_inner = 2 * xa * (w * xa - ya)
    w1 = w - alpha * g_inner
    outer = 2 * (w1 * xb - yb) * xb
    assert loss.item() == pytest.approx((w1 * xb - yb) ** 2)  # the same update as a fixed alpha
    assert net.w.grad.item() == pytest.approx(outer * (1 - 2 * alpha * xa**2), rel=1e-10)
    assert log_lr.grad.item() == pytest.approx(outer * -g_inner * alpha, rel=1e-10)
    adapted = learner.adapt(parameters_of(net), _scalar_demo(xa, ya), steps=3, create_graph=False)
    assert torch.equal(adapted["inner_log_lr.w"], log_lr)  # step sizes are never adapted themselves


class TwoScalarPolicy(nn.Module):
    """a = (u + v) * s, with u and v adapted at different step sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.u = nn.Parameter(torch.tensor(0.3))
        self.v = nn.Parameter(torch.tensor(-0.2))

    def post_update_only(self) -> set[str]:
        return set()

    def forward(self, images: torch.Tensor, states: torch.Tensor) -> PolicyOutput:
        return PolicyOutput(actions=(self.u + self.v) * states, pre_head=None, target=None)


@pytest.mark.parametrize("learn", [False, True])
def test_inner_lr_scale_multiplies_the_step_size_of_the_named_parameters(learn: bool) -> None:
    """inner_lr_scale {"u": 4}: u steps 4x as far as v (fixed step sizes, or where learned ones start)."""
    alpha, (xa, ya) = 0.05, (1.5, 2.0)
    net = TwoScalarPolicy()
    config = MamlConfig(
        inner_steps=1, inner_lr=alpha, inner_grad_clip=None, loss="mse", learn_inner_lr=learn, inner_lr_scale={"u": 4}
    )
    learner = MetaLearner(net, config)
    g = 2 * xa * ((0.3 - 0.2) * xa - ya)  # the same gradient for u and v
    adapted = learner.adapt(parameters_of(net), _scalar_demo(xa, ya), create_graph=False)
    assert adapted["u"].item() == pytest.approx(0.3 - 4 * alpha * g, rel=1e-10)
    assert adapted["v"].item() == pytest.approx(-0.2 - alpha * g, rel=1e-10)
    if learn:
        assert net.get_parameter("inner_log_lr.u").exp().item() == pytest.approx(4 * alpha)
    assert (
        MamlConfig(inner_lr=0.1, inner_lr_scale={"convs": 2, "convs.0.weight": 5}).inner_lr_of("convs.0.weight") == 0.5
    )
    with pytest.raises(ConfigError, match="names no parameter"):
        MetaLearner(TwoScalarPolicy(), MamlConfig(inner_lr_scale={"convs.0": 2}))
    with pytest.raises(ConfigError, match=">= 0"):
        MamlConfig(inner_lr_scale={"u": -1})


def test_two_inner_steps_chain_the_second_order_terms() -> None:
    w, alpha, xa, ya, xb, yb = 0.2, 0.05, 2.0, 1.0, 1.0, 0.5
    net = ScalarPolicy(w)
    learner = MetaLearner(net, MamlConfig(inner_steps=2, inner_lr=alpha, inner_grad_clip=None, loss="mse"))
    learner.task_meta_loss(parameters_of(net), _scalar_demo(xa, ya), _scalar_demo(xb, yb)).backward()
    shrink = 1 - 2 * alpha * xa**2  # d w_{k+1} / d w_k
    w1 = w - alpha * 2 * xa * (w * xa - ya)
    w2 = w1 - alpha * 2 * xa * (w1 * xa - ya)
    assert net.w.grad.item() == pytest.approx(2 * (w2 * xb - yb) * xb * shrink**2, rel=1e-10)


def test_inner_gradient_is_clipped_elementwise() -> None:
    net = ScalarPolicy(3.0)
    learner = MetaLearner(net, MamlConfig(inner_steps=1, inner_lr=0.1, inner_grad_clip=0.5, loss="mse"))
    adapted = learner.adapt(parameters_of(net), _scalar_demo(2.0, -5.0))  # raw gradient 2*2*(6+5) = 44
    assert adapted["w"].item() == pytest.approx(3.0 - 0.1 * 0.5)
    learner.config.inner_grad_clip = None
    assert learner.adapt(parameters_of(net), _scalar_demo(2.0, -5.0))["w"].item() == pytest.approx(3.0 - 4.4)


def _tiny_net(**kw: object) -> PolicyNetwork:
    torch.manual_seed(0)
    cfg = NetworkConfig(
        image_width=12,
        image_height=10,
        state_dim=3,
        action_dim=2,
        conv=[ConvLayer(4, 3, 2), ConvLayer(4, 3, 1)],
        fc=[8],
        **kw,
    )
    return PolicyNetwork(cfg)


def _batch(m: int, n: int, t: int = 4, seed: int = 0) -> DemoBatch:
    g = torch.Generator().manual_seed(seed)
    return DemoBatch(
        torch.rand(m, n, t, 3, 10, 12, generator=g),
        torch.randn(m, n, t, 3, generator=g),
        torch.randn(m, n, t, 2, generator=g),
        torch.randn(m, n, 2, generator=g),
    )


@pytest.mark.parametrize(
    ("net_kw", "maml_kw"),
    [
        ({}, {"loss": "l1l2"}),
        ({"predict_target": True, "bias_transform_dim": 3}, {"inner_steps": 2, "shots": 2}),
        ({"two_head": True, "bias_image": True}, {"inner_loss": "learned_bc", "loss": "mse"}),
        ({"two_head": True}, {"inner_loss": "learned_no_actions", "demo_inputs": "video_only"}),
        ({}, {"first_order": True}),
        ({"bias_transform_dim": 3}, {"inner_steps": 2, "learn_inner_lr": True}),
        ({"predict_target": True}, {"unadapted_target_weight": 0.5, "target_loss_weight": 3.0}),
    ],
)
def test_vmap_and_loop_give_the_same_meta_gradient(net_kw: dict, maml_kw: dict) -> None:
    net = _tiny_net(**net_kw)
    learner = MetaLearner(net, MamlConfig(**{"inner_steps": 1, "inner_lr": 0.05, **maml_kw}))
    n = learner.config.shots
    a, b = _batch(3, n, seed=1), _batch(3, 1, seed=2)
    grads = []
    for vectorized in (False, True):
        net.zero_grad()
        loss = learner.meta_loss(parameters_of(net), a, b, vectorized=vectorized)
        loss.backward()
        grads.append({k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 5
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], rtol=1e-7, atol=1e-9, msg=k)


def test_unadapted_target_loss_adds_the_first_frames_target_error_before_adaptation() -> None:
    net = _tiny_net(predict_target=True)
    a, b = _batch(1, 1, seed=1).task(0), _batch(1, 1, seed=2).task(0)
    plain = MetaLearner(net, MamlConfig(inner_steps=1, inner_lr=0.05, target_loss_weight=3.0))
    params = parameters_of(net)
    with torch.no_grad():
        before = net(b.images, b.states).target
    expected = 0.5 * 3.0 * torch.nn.functional.mse_loss(before, b.targets)
    weighted = MetaLearner(
        net, MamlConfig(inner_steps=1, inner_lr=0.05, target_loss_weight=3.0, unadapted_target_weight=0.5)
    )
    torch.testing.assert_close(weighted.unadapted_target_loss(params, b), expected)
    torch.testing.assert_close(
        weighted.task_meta_loss(params, a, b), plain.task_meta_loss(params, a, b) + expected, rtol=1e-10, atol=0
    )
    assert plain.unadapted_target_loss(params, b) == 0.0


def test_two_head_adapts_with_the_pre_update_head_only() -> None:
    net = _tiny_net(two_head=True)
    learner = MetaLearner(net, MamlConfig(inner_steps=1, inner_lr=0.1, inner_loss="learned_bc", loss="mse"))
    params = parameters_of(net)
    adapted = learner.adapt(params, _batch(1, 1).task(0))
    # The post-update head is never changed by the demo ...
    assert torch.equal(adapted["head.weight"], params["head.weight"])
    assert torch.equal(adapted["head.bias"], params["head.bias"])
    # ... the trunk and the pre-update head are.
    assert not torch.allclose(adapted["fcs.0.weight"], params["fcs.0.weight"])
    assert not torch.allclose(adapted["head_pre.weight"], params["head_pre.weight"])
    # The inner loss is the pre-update head's: it does not depend on the post-update head.
    demo = _batch(1, 1).task(0)
    loss = learner.inner_loss(params, demo)
    (g,) = torch.autograd.grad(loss, [params["head.weight"]], allow_unused=True)
    assert g is None or torch.count_nonzero(g) == 0


def test_learned_loss_without_actions_ignores_actions_and_state() -> None:
    net = _tiny_net(two_head=True)
    learner = MetaLearner(net, MamlConfig(inner_loss="learned_no_actions", demo_inputs="video_only"))
    demo = _batch(1, 1).task(0)
    other = DemoBatch(demo.images, torch.randn_like(demo.states), torch.randn_like(demo.actions), None)
    params = parameters_of(net)
    assert learner.inner_loss(params, demo).item() == pytest.approx(learner.inner_loss(params, other).item())
    out = net(demo.images, torch.zeros_like(demo.states))
    assert learner.inner_loss(params, demo).item() == pytest.approx(out.pre_head.pow(2).mean().item())


def test_n_shot_inner_gradient_is_the_average_of_the_demos() -> None:
    net = ScalarPolicy(0.5)
    learner = MetaLearner(net, MamlConfig(inner_steps=1, inner_lr=0.1, inner_grad_clip=None, loss="mse"))
    two = DemoBatch(torch.zeros(2, 1, 1, 1, 1), torch.tensor([[[1.0]], [[3.0]]]), torch.tensor([[[2.0]], [[-1.0]]]))
    adapted = learner.adapt(parameters_of(net), two)["w"].item()
    g1, g2 = 2 * 1.0 * (0.5 * 1.0 - 2.0), 2 * 3.0 * (0.5 * 3.0 + 1.0)
    assert adapted == pytest.approx(0.5 - 0.1 * (g1 + g2) / 2)


def test_bias_transformation_update_matches_section_5() -> None:
    """b~' = (W2 - a G z^T)(z - a W2^T G) + b - a G, with G = dL/db of the first FC layer."""
    net = _tiny_net(bias_transform_dim=5)
    with torch.no_grad():
        net.bias_transform.normal_()
    alpha = 0.3
    learner = MetaLearner(net, MamlConfig(inner_steps=1, inner_lr=alpha, inner_grad_clip=None, loss="mse"))
    params = parameters_of(net)
    demo = _batch(1, 1).task(0)
    z_cols = slice(net.feature_dim + net.config.state_dim, None)  # FC input: [features, state, z]
    w2, z, b = params["fcs.0.weight"][:, z_cols], params["bias_transform"], params["fcs.0.bias"]
    (g,) = torch.autograd.grad(learner.inner_loss(params, demo), [b])
    expected = (w2 - alpha * torch.outer(g, z)) @ (z - alpha * w2.T @ g) + b - alpha * g
    adapted = learner.adapt(params, demo, create_graph=False)
    got = adapted["fcs.0.weight"][:, z_cols] @ adapted["bias_transform"] + adapted["fcs.0.bias"]
    torch.testing.assert_close(got, expected)


def test_spatial_soft_argmax_finds_the_peak() -> None:
    x = torch.full((1, 1, 5, 7), -50.0)
    x[0, 0, 4, 0] = 50.0  # bottom-left
    pts = SpatialSoftArgmax()(x)
    torch.testing.assert_close(pts, torch.tensor([[-1.0, 1.0]]), atol=1e-6, rtol=0)


def test_spatial_soft_argmax_temperature_sharpens_a_small_peak() -> None:
    """After layer norm a peak is O(1): temperature 1 blurs it toward the centre, a low one finds it."""
    x = torch.zeros(1, 1, 16, 20)
    x[0, 0, 15, 0] = 3.0  # bottom-left, three units above the rest
    blurred, sharp = SpatialSoftArgmax()(x), SpatialSoftArgmax(temperature=0.1)(x)
    assert blurred.abs().max() < 0.1  # 1 pixel of e^3 against 319 of e^0: about the centre
    torch.testing.assert_close(sharp, torch.tensor([[-1.0, 1.0]]), atol=1e-3, rtol=0)
    learned = SpatialSoftArgmax(temperature=0.1)
    assert [n for n, _ in learned.named_parameters()] == ["log_temperature"]
    assert not list(SpatialSoftArgmax().parameters())
    with pytest.raises(ConfigError, match="softmax_temperature"):
        NetworkConfig(softmax_temperature=0.0)


def test_elu_activation_keeps_a_gradient_where_relu_has_none() -> None:
    """activation: elu; a hidden unit that ReLU has switched off still passes a signal and a gradient."""
    relu, elu = _tiny_net(), _tiny_net(activation="elu")
    elu.load_state_dict(relu.state_dict())
    for net in (relu, elu):
        with torch.no_grad():
            net.fcs[0].bias.fill_(-20.0)  # every FC unit far below zero: dead under ReLU
    images, states = torch.rand(2, 3, 3, 10, 12), torch.rand(2, 3, 3)
    grads = []
    for net in (relu, elu):
        net(images, states).actions.sum().backward()
        grads.append(net.fcs[0].weight.grad.abs().sum().item())
    assert grads[0] == 0.0 and grads[1] > 0.0
    with pytest.raises(ConfigError, match="activation"):
        NetworkConfig(activation="tanh")


def test_network_rejects_wrong_image_size() -> None:
    net = _tiny_net()
    with pytest.raises(ValueError, match="expects"):
        net(torch.rand(1, 2, 3, 9, 12), torch.rand(1, 2, 3))


def test_config_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="needs inner_loss='learned_no_actions'"):
        MamlConfig(demo_inputs="video_only")
    with pytest.raises(ConfigError, match="two_head"):
        MilConfig(maml=MamlConfig(inner_loss="learned_bc"))
    with pytest.raises(ConfigError, match="unknown config sections"):
        MilConfig.from_dict({"netwrk": {}})
    with pytest.raises(ConfigError, match="bad config"):
        MilConfig.from_dict({"maml": {"inner_stepz": 3}})
    with pytest.raises(ConfigError, match="positive"):
        NetworkConfig(image_width=0)
    with pytest.raises(ValueError, match="evaluation tasks"):
        net = _tiny_net()
        MetaLearner(net, MamlConfig()).meta_loss(parameters_of(net), _batch(2, 1), _batch(3, 1))


def test_loss_scale_turns_the_mean_into_equation_2s_sum() -> None:
    net = ScalarPolicy(0.5)
    demo = DemoBatch(torch.zeros(1, 3, 1, 1, 1), torch.tensor([[[1.0], [2.0], [3.0]]]), torch.zeros(1, 3, 1))
    plain = MetaLearner(net, MamlConfig(loss="mse")).inner_loss(parameters_of(net), demo)
    summed = MetaLearner(net, MamlConfig(loss="mse", loss_scale=3.0)).inner_loss(parameters_of(net), demo)
    assert summed.item() == pytest.approx(sum((0.5 * x) ** 2 for x in (1.0, 2.0, 3.0)))
    assert summed.item() == pytest.approx(3.0 * plain.item())


def test_action_weights_weigh_each_dimension_by_their_share_of_mean_one() -> None:
    """A twist in m/s and rad/s: weights 1 / limit^2 make a full-range error count alike in every dim."""
    pred = torch.tensor([[0.4, 0.0], [0.0, 2.0]])  # a full-range linear error, then a full-range angular one
    target = torch.zeros(2, 2)
    plain = action_loss(pred, target, "mse")
    assert plain.item() == pytest.approx((0.4**2 + 2.0**2) / 4)  # the angular error dominates 25:1
    w = [1 / 0.4**2, 1 / 2.0**2]
    weighted = action_loss(pred, target, "mse", weights=w)
    per_dim = [0.4**2 * w[0], 2.0**2 * w[1]]
    assert weighted.item() == pytest.approx(sum(per_dim) / 4 / (sum(w) / 2))
    assert per_dim[0] == pytest.approx(per_dim[1])
    # Equal weights change nothing, whatever their size; l1l2 weighs both of its terms.
    assert action_loss(pred, target, "l1l2", 2.0, [7.0, 7.0]).item() == pytest.approx(
        action_loss(pred, target, "l1l2", 2.0).item()
    )
    with pytest.raises(ConfigError, match="positive"):
        MamlConfig(action_weights=[1.0, 0.0])
    with pytest.raises(ConfigError, match="action_dim"):
        MilConfig(network=NetworkConfig(action_dim=6), maml=MamlConfig(action_weights=[1.0, 2.0]))
