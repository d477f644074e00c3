"""The policy node over real DDS: adapt to a demo bag and drive the sim arm through the bridge; faults.

A tiny untrained checkpoint is enough here: these tests check the plumbing and the safety behaviour,
not what the policy learned (the evaluation command measures that).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mil_policy.checkpoint import save_checkpoint
from mil_policy.config import ConvLayer, DataConfig, MamlConfig, MilConfig, NetworkConfig
from mil_policy.network import PolicyNetwork
from mil_sim.demo_bag import write_episode
from mil_sim.families import get_family
from mil_sim.rollout import run_episode

pytestmark = pytest.mark.ros
TASK = "placing/test/0"


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("policy_node")
    torch.manual_seed(0)
    cfg = MilConfig(
        network=NetworkConfig(
            conv=[ConvLayer(4, 3, 2), ConvLayer(4, 3, 2)], fc=[16], bias_transform_dim=4, predict_target=True
        ),
        maml=MamlConfig(inner_steps=1, meta_batch=2),
        # A 20 s episode: 30 policy steps at 1.5 Hz, so the rollout outlasts the checks even on a slow machine.
        data=DataConfig(family="placing", horizon=30, family_config={"episode_seconds": 20.0}),
    )
    net = PolicyNetwork(cfg.network)
    with torch.no_grad():  # a visible, steady motion: +x at 5 cm/s whatever the input
        net.head.weight.zero_()
        net.head.bias.copy_(torch.tensor([0.05, 0.0, 0.0, 0.0, 0.0, 0.0]))
    save_checkpoint(root / "ckpt", net.state_dict(), cfg)
    family = get_family("placing")
    env = family.make_env(family.task(TASK), trial_seed=5, render=False)
    episode = run_episode(family, env, family.make_expert(env, seed=0))
    write_episode(root / "demo", episode, state_names=family.state_names)
    small = get_family("placing", camera_width=160, camera_height=120, downsample=1)
    env = small.make_env(small.task(TASK), trial_seed=5, render=False)
    write_episode(
        root / "demo_small", run_episode(small, env, small.make_expert(env, seed=0)), state_names=small.state_names
    )
    (root / "corrupt").mkdir()
    (root / "corrupt" / "corrupt.mcap").write_bytes(b"\x89MCAP0\r\n not really")
    return {
        "root": root,
        "ckpt": root / "ckpt",
        "demo": root / "demo",
        "demo_small": root / "demo_small",
        "corrupt": root / "corrupt",
    }


class System:
    """Sim (own context, so it can be killed), bridge + policy (one context), probe (third context)."""

    def __init__(self, domain_id: int, policy_params: dict[str, Any], with_sim: bool = True) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import DurabilityPolicy, QoSProfile
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray, String

        from mil_policy.policy_node import PolicyNode
        from mil_pr2_bridge.bridge_node import BridgeNode
        from mil_sim.sim_node import SimNode

        self.rclpy = rclpy
        self.contexts = [Context(), Context(), Context()]
        for c in self.contexts:
            rclpy.init(context=c, domain_id=domain_id)
        sim_ctx, ctx, probe_ctx = self.contexts
        self.executors: list[Any] = []
        self.threads: list[threading.Thread] = []
        self.sim = None
        if with_sim:
            self.sim = SimNode(context=sim_ctx, parameter_defaults={"task_id": TASK, "trial_seed": 11})
            self._spin(SingleThreadedExecutor(context=sim_ctx), [self.sim])
        self.bridge = BridgeNode(context=ctx)
        self.policy = PolicyNode(context=ctx, parameter_defaults=policy_params)
        # One executor thread per node, as in the bringup (rclpy's MultiThreadedExecutor stalls callbacks).
        self._spin(SingleThreadedExecutor(context=ctx), [self.bridge])
        self._spin(SingleThreadedExecutor(context=ctx), [self.policy])

        self.probe = Node("probe", context=probe_ctx)
        self.probe_exec = SingleThreadedExecutor(context=probe_ctx)
        self.probe_exec.add_node(self.probe)
        self.states: list[dict[str, Any]] = []
        self.joints: list[np.ndarray] = []
        self.arm_cmds: list[tuple[float, list[float]]] = []
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.probe.create_subscription(
            String, "/mil_policy/state", lambda m: self.states.append(json.loads(m.data)), latched
        )
        self.probe.create_subscription(
            JointState, "/joint_states", lambda m: self.joints.append(np.array(m.position[:7])), 50
        )
        self.probe.create_subscription(
            Float64MultiArray,
            "/r_arm_velocity_controller/commands",
            lambda m: self.arm_cmds.append((time.monotonic(), list(m.data))),
            100,
        )

    def _spin(self, executor: Any, nodes: list[Any]) -> None:
        for n in nodes:
            executor.add_node(n)
        thread = threading.Thread(target=executor.spin, daemon=True)
        thread.start()
        self.executors.append(executor)
        self.threads.append(thread)

    def spin_until(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                last = self.states[-1] if self.states else None
                # Which publishers the probe has discovered tells a DDS discovery stall (the suite's one
                # flake, under heavy CPU load) from a node that stopped publishing.
                seen = {t: self.probe.count_publishers(t) for t in ("/joint_states", "/mil_policy/state")}
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}; policy state {last}; publishers the "
                    f"probe sees: {seen}; received {len(self.joints)} joint states, {len(self.states)} states"
                )
            self.probe_exec.spin_once(timeout_sec=0.02)

    def state(self) -> str:
        return self.states[-1]["state"] if self.states else ""

    def kill_sim(self) -> None:
        """The camera (and the whole robot simulation) dies."""
        self.executors[0].shutdown()
        self.threads[0].join(timeout=5.0)
        self.sim.destroy_node()
        self.sim = None

    def close(self) -> None:
        self.probe.destroy_node()
        self.probe_exec.shutdown()
        for ex in self.executors:
            ex.shutdown()
        for t in self.threads:
            t.join(timeout=5.0)
        for n in (self.bridge, self.policy, self.sim):
            if n is not None:
                n.destroy_node()
        for c in self.contexts:
            self.rclpy.shutdown(context=c)


@pytest.fixture
def make_system(domain_id: int) -> Iterator[Callable[..., System]]:
    made: list[System] = []

    def make(policy_params: dict[str, Any], with_sim: bool = True) -> System:
        s = System(domain_id, policy_params, with_sim)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def test_adapts_drives_the_arm_and_stops_when_the_camera_dies(
    assets: dict[str, Path], make_system: Callable[..., System]
) -> None:
    sys_ = make_system({"checkpoint": str(assets["ckpt"]), "demo_bag": str(assets["demo"])})
    sys_.spin_until(lambda: sys_.state() == "running", 60.0, "adaptation and start")
    assert sys_.states[-1]["adapt_seconds"] > 0
    # 30 s, not 10: once in six suite runs the probe's /joint_states subscription matched late (DDS
    # discovery on a loaded 2-core machine) while the policy was already receiving them.
    sys_.spin_until(lambda: len(sys_.joints) > 2, 30.0, "joint states")
    start = sys_.joints[-1].copy()
    sys_.spin_until(lambda: np.abs(sys_.joints[-1] - start).max() > 0.02, 30.0, "the arm to move")
    assert any(any(c) for _, c in sys_.arm_cmds), "the bridge never commanded the arm"

    # The e-stop latches: the arm stops although the policy keeps commanding, until ~/reset_estop.
    from std_msgs.msg import Bool

    estop = sys_.probe.create_publisher(Bool, "/estop", 10)
    sys_.spin_until(lambda: estop.get_subscription_count() > 0, 5.0, "the bridge's e-stop subscriber")
    estop.publish(Bool(data=True))
    pressed = time.monotonic()
    sys_.spin_until(lambda: sys_.arm_cmds and sys_.arm_cmds[-1][0] > pressed + 1.5, 10.0, "commands under e-stop")
    assert all(not any(c) for t, c in sys_.arm_cmds if t > pressed + 1.0)
    assert sys_.state() == "running"  # the policy did not stop; the bridge did

    sys_.kill_sim()
    killed = time.monotonic()
    sys_.spin_until(lambda: sys_.state() == "fault", 5.0, "a fault for stale inputs")
    assert "stale" in sys_.states[-1]["detail"]
    # Policy (0.5 s input timeout) and bridge (0.5 s state timeout, 0.2 s watchdog) both stop the arm.
    sys_.spin_until(lambda: sys_.arm_cmds and sys_.arm_cmds[-1][0] > killed + 2.5, 10.0, "bridge output")
    late = [c for t, c in sys_.arm_cmds if t > killed + 2.0]
    assert late and all(not any(c) for c in late)


@pytest.mark.parametrize(
    ("demo", "match"),
    [("missing", "does not exist|not found|no such"), ("corrupt", "not a rosbag2 bag"), ("demo_small", "expected")],
)
def test_bad_demo_faults_and_the_arm_does_not_move(
    assets: dict[str, Path], make_system: Callable[..., System], demo: str, match: str
) -> None:
    bag = str(assets["root"] / "missing") if demo == "missing" else str(assets[demo])
    sys_ = make_system({"checkpoint": str(assets["ckpt"]), "demo_bag": bag})
    sys_.spin_until(lambda: sys_.state() == "fault", 30.0, "a fault")
    import re

    assert re.search(match, sys_.states[-1]["detail"], re.IGNORECASE), sys_.states[-1]["detail"]
    # The arm's joints read from the running sim itself: the probe's /joint_states subscription was once
    # not matched with the sim's publisher within 30 s on a CI machine (the bridge's was), and what this
    # test is about is that the arm stays put, not discovery.
    sim = sys_.sim
    assert sim is not None
    start = sim.sim_time
    before = sim.env.joint_positions()[:7].copy()
    sys_.spin_until(lambda: sim.sim_time > start + 0.5, 10.0, "0.5 s of sim time")
    assert np.abs(sim.env.joint_positions()[:7] - before).max() < 1e-6
    assert sys_.policy.state == "fault"  # the node is still up and reports why


@pytest.mark.parametrize(("ckpt", "match"), [("nope", "does not exist"), ("model.pt", "pickled")])
def test_unknown_or_pickled_checkpoint_faults(
    assets: dict[str, Path], make_system: Callable[..., System], ckpt: str, match: str
) -> None:
    path = assets["root"] / ckpt
    if ckpt.endswith(".pt"):
        torch.save({"w": torch.zeros(1)}, path)
    sys_ = make_system({"checkpoint": str(path), "demo_bag": str(assets["demo"])}, with_sim=False)
    sys_.spin_until(lambda: sys_.state() == "fault", 10.0, "a fault")
    assert match in sys_.states[-1]["detail"]


def test_waits_for_the_camera_then_faults_if_it_never_comes(
    assets: dict[str, Path], make_system: Callable[..., System]
) -> None:
    sys_ = make_system(
        {"checkpoint": str(assets["ckpt"]), "demo_bag": str(assets["demo"]), "startup_timeout_s": 1.0},
        with_sim=False,
    )
    sys_.spin_until(lambda: sys_.state() == "running", 60.0, "adaptation and start")
    sys_.spin_until(lambda: sys_.state() == "fault", 10.0, "the startup timeout")
    assert "no camera image received" in sys_.states[-1]["detail"]
