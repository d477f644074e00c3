"""DAgger data collection (``dagger``) on real MuJoCo reaching: who drives, what the labels are, the bags
it writes and how training reads them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mil_policy.config import DataConfig
from mil_policy.dagger import main, rollout_seeds
from mil_policy.dataset import MetaBatchSampler, load_dataset
from mil_sim import generate
from mil_sim.core import DRIVEN_BY, DRIVEN_BY_POLICY
from mil_sim.demo_bag import read_episode, read_task_metadata
from mil_sim.perturbation import PolicyTakeover
from mil_sim.rollout import run_episode

STEPS = 20  # the episode length of the reaching_1s fixture (conftest)


@pytest.fixture
def family(reaching_1s):
    assert reaching_1s.episode_steps == STEPS
    return reaching_1s


def _takeover_episode(family, beta: float, acting: list[int], act):
    env = family.make_env(family.tasks("train")[0], 123, render=True)
    try:
        expert = family.make_expert(env, 5, 0.0)
        takeover = PolicyTakeover(env, act, acting, beta, seed=3, reset=lambda: None)
        return run_episode(family, env, expert, perturb=takeover), takeover
    finally:
        env.close()


def test_the_policy_drives_its_acting_steps_and_the_expert_labels_every_step(family) -> None:
    calls: list[int] = []

    def act(image: np.ndarray, state: np.ndarray) -> np.ndarray:
        assert image.ndim == 3 and image.dtype == np.uint8
        calls.append(len(calls))
        return np.full(family.action_dim, 0.02 * len(calls), dtype=np.float32)

    acting = [0, 5, 10, 15]
    episode, takeover = _takeover_episode(family, 0.0, acting, act)
    assert len(calls) == len(acting) and takeover.policy_steps == STEPS
    # The policy's action is applied and held until its next acting step.
    for k, start in enumerate(acting):
        np.testing.assert_allclose(episode.actions[start : start + 5], 0.02 * (k + 1))
    # The labels are the noise-free expert's on the states the policy reached: a fresh expert replayed
    # along the recorded states (same scene, same applied actions) asks exactly for them.
    env = family.make_env(family.tasks("train")[0], 123, render=False)
    try:
        expert, obs = family.make_expert(env, 5, 0.0), env.reset()
        for i in range(STEPS):
            np.testing.assert_allclose(expert(obs), episode.labels[i], rtol=1e-6, atol=1e-6)
            obs = env.step(episode.actions[i])
    finally:
        env.close()
    assert not np.allclose(episode.labels, episode.actions)


def test_beta_one_is_the_expert_and_beta_mixes_per_acting_step(family) -> None:
    def act(image: np.ndarray, state: np.ndarray) -> np.ndarray:
        return np.zeros(family.action_dim, dtype=np.float32)

    expert_only, takeover = _takeover_episode(family, 1.0, list(range(STEPS)), act)
    np.testing.assert_array_equal(expert_only.actions, expert_only.labels)
    assert takeover.policy_steps == 0
    _, mixed = _takeover_episode(family, 0.5, list(range(STEPS)), act)
    assert 0 < mixed.policy_steps < STEPS
    with pytest.raises(ValueError, match="beta"):
        PolicyTakeover(None, act, [0], 1.5, 0, lambda: None)  # type: ignore[arg-type]


def test_cli_writes_labelled_rollouts_beside_the_demos_that_training_never_adapts_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], untrained_reaching_1s: Path
) -> None:
    family_config = {"episode_steps": STEPS}
    demos = tmp_path / "demos"
    gen = ["--family", "reaching", "--tasks", "2", "--demos-per-task", "2", "--out", str(demos)]
    assert generate.main([*gen, "--family-config", json.dumps(family_config)]) == 0
    shutil.copytree(demos, tmp_path / "demos2")
    ckpt = untrained_reaching_1s
    argv = ["--checkpoint", str(ckpt), "--demos", str(demos), "--tasks", "2", "--rollouts", "2", "--round", "1"]
    assert main([*argv, "--threads", "1"]) == 0
    assert "wrote 4 labelled rollouts (0 already there)" in capsys.readouterr().out
    bags = sorted(demos.glob("reaching/train/*/demo_dagger1_*"))
    assert len(bags) == 4
    first = read_episode(bags[0])
    meta = read_task_metadata(bags[0])
    assert meta["source"] == "dagger" and meta["metadata"][DRIVEN_BY] == DRIVEN_BY_POLICY
    assert meta["metadata"]["policy_share"] == 1.0 and not first.is_demonstration
    assert first.labels is not None and not np.allclose(first.labels, first.actions)
    # New scenes: none is a scene of the demos already there.
    assert first.trial_seed == rollout_seeds(0, 0, 1, 0)[0]
    demo_seeds = {read_episode(b).trial_seed for b in demos.glob("reaching/train/*/demo_[0-9]")}
    assert not demo_seeds & {read_episode(b).trial_seed for b in bags}
    # A re-run resumes: nothing rewritten.
    assert main(argv) == 0
    assert "wrote 0 labelled rollouts (4 already there)" in capsys.readouterr().out
    index = (demos / "reaching" / "train" / "index.json").read_text()
    assert "demo_dagger1_1" in index

    # Training reads them as evaluation demos only.
    ds = load_dataset(demos, DataConfig(family="reaching", horizon=6, family_config=family_config), progress=False)
    assert ds.num_demos == 8 and int(ds.adaptable.sum()) == 4
    sampler = MetaBatchSampler(ds, range(ds.num_tasks), meta_batch=2, shots=1, seed=0)
    seen_eval = set()
    for _ in range(40):
        idx = sampler.sample_indices()
        assert ds.adaptable[idx.demos[:, 0]].all()
        seen_eval |= set(idx.demos[:, 1].tolist())
    assert any(not ds.adaptable[d] for d in seen_eval)

    # Two worker processes write the same rollouts (same scenes, same bags) as one.
    argv2 = [*argv[:3], str(tmp_path / "demos2"), *argv[4:]]
    assert main([*argv2, "--workers", "2"]) == 0
    assert "wrote 4 labelled rollouts (0 already there)" in capsys.readouterr().out
    bags2 = sorted((tmp_path / "demos2").glob("reaching/train/*/demo_dagger1_*"))
    assert [b.relative_to(tmp_path / "demos2") for b in bags2] == [b.relative_to(demos) for b in bags]
    assert [read_episode(b).trial_seed for b in bags2] == [read_episode(b).trial_seed for b in bags]


def test_cli_bad_input_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], untrained_reaching_1s: Path
) -> None:
    base = ["--demos", str(tmp_path), "--tasks", "1", "--round", "1"]
    assert main(["--checkpoint", str(tmp_path / "missing"), *base]) == 2
    assert "dagger:" in capsys.readouterr().err
    ckpt = str(untrained_reaching_1s)
    assert main(["--checkpoint", ckpt, "--demos", str(tmp_path), "--tasks", "9999", "--round", "1"]) == 2
    assert "9999" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--checkpoint", ckpt, *base, "--beta", "2"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["--checkpoint", ckpt, *base, "--workers", "0"])
    assert "--workers must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--checkpoint", ckpt, "--demos", str(tmp_path / "nope"), "--tasks", "1", "--round", "1"])
