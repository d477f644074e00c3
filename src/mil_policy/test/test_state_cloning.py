"""``clone_state``: the expert's demos, the MLP fit, DAgger's relabelled rollouts and the CLI, on real
pushing episodes (no rendering, so a handful take seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mil_policy import state_cloning
from mil_policy.state_cloning import as_policy, collect, fit, path_error
from mil_sim.families import get_family

PRIVILEGED = {"action_space": "ee_twist", "pusher": "round", "hold_tool_upright": True, "privileged_state": True}


@pytest.fixture(scope="module")
def family():
    return get_family("pushing", **PRIVILEGED)


def test_expert_demos_are_labelled_with_what_was_applied(family) -> None:
    data = collect(family, [0, 1], per_task=1, seed_offset=0)
    steps = family.episode_steps
    assert data.states.shape == (2 * steps, len(family.state_names)) and data.labels.shape == (2 * steps, 6)
    assert data.episodes == 2 and data.successes == 2  # the scripted expert pushes these scenes
    # The state carries the true target and goal x, y (privileged): constant within an episode.
    assert np.ptp(data.states[:steps, -2:], axis=0).max() == 0.0


def test_a_driving_policy_is_labelled_by_the_expert(family) -> None:
    """A policy that never moves: the labels are the expert's (non-zero) wishes, the states stay put."""
    still = np.zeros(family.action_dim, np.float32)
    data = collect(family, [0], per_task=1, seed_offset=0, act=lambda state: still)
    assert data.successes == 0
    assert np.abs(data.labels[:10]).max() > 0.01
    tip = data.states[:, 14:17]
    assert np.abs(tip - tip[0]).max() < 0.01


def test_standardising_fit_recovers_a_function_of_a_badly_scaled_state() -> None:
    """Labels that depend on an entry a thousand times smaller than another: standardised, the MLP
    fits them; raw, the large entry swamps it (the failure ``network.normalise_state`` removes)."""
    rng = np.random.default_rng(0)
    states = np.stack([rng.normal(0, 100.0, 4000), rng.normal(0, 0.01, 4000)], axis=1).astype(np.float32)
    labels = np.tanh(states[:, 1:] / 0.01).astype(np.float32)
    data = state_cloning.Rollouts(states, labels, 0, 1)
    kwargs = {"hidden": 32, "steps": 800, "batch": 256, "lr": 1e-3, "seed": 0}
    _, standardised = fit(data, np.ones(1), standardise=True, **kwargs)
    _, raw = fit(data, np.ones(1), standardise=False, **kwargs)
    assert standardised < 0.05 < raw


def test_policy_clips_to_the_action_limits(family) -> None:
    data = state_cloning.Rollouts(np.zeros((4, 21), np.float32), np.full((4, 6), 100.0, np.float32), 0, 1)
    net, _ = fit(data, np.ones(6), standardise=True, hidden=8, steps=200, batch=4, lr=1e-1, seed=0)
    action = as_policy(net, family)(np.zeros(21, np.float32))
    assert action.shape == (6,) and np.all(np.abs(action) <= family.action_limits + 1e-6)


def test_path_error_is_drifts_measure() -> None:
    """Squared error summed over the action dimensions, averaged over steps, as ``drift`` reports it."""
    labels = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]], np.float32)
    data = state_cloning.Rollouts(np.zeros((3, 5), np.float32), labels, 0, 1)
    assert path_error(lambda state: np.zeros(2, np.float32), data) == pytest.approx(5.0 / 3.0)
    assert path_error(lambda state: np.array([1.0, 0.0], np.float32), data) == pytest.approx(6.0 / 3.0)


def test_mil_shaped_batches_take_one_rollout_per_task_and_its_steps(family) -> None:
    data = state_cloning.merge(
        collect(family, [0, 1], per_task=2, seed_offset=0),
        collect(family, [0, 1], per_task=1, seed_offset=5, act=lambda state: np.zeros(6, np.float32)),
    )
    assert data.episodes == 6 and set(data.episode_of) == set(range(6))
    rng = np.random.default_rng(0)
    steps_of = state_cloning.rollout_steps(data)
    seen = set()
    for _ in range(30):
        idx = state_cloning.mil_shaped_batch(steps_of, 7, rng)
        assert len(idx) == 14 and len(set(idx)) == 14
        assert sorted(data.task_of[idx]) == [0] * 7 + [1] * 7
        assert len(set(data.episode_of[idx])) == 2
        seen |= set(data.episode_of[idx])
    assert seen == set(range(6))  # every rollout, the DAgger ones included, gets drawn
    _, loss = fit(data, np.ones(6), standardise=True, hidden=8, steps=5, batch=4, lr=1e-3, seed=0, frames_per_demo=3)
    assert np.isfinite(loss)
    with pytest.raises(ValueError, match="which episode"):
        state_cloning.rollout_steps(state_cloning.Rollouts(data.states, data.labels, 0, 6))


def test_cli_clones_runs_dagger_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "clone.json"
    argv = ["--family-config", json.dumps(PRIVILEGED), "--tasks", "2", "--demos-per-task", "2", "--trials", "1"]
    argv += ["--dagger-rounds", "1", "--steps", "50", "--hidden", "16", "--no-progress", "--json", str(out)]
    assert state_cloning.main(argv) == 0
    text = capsys.readouterr().out
    assert "standardised state" in text and "DAgger round 1" in text
    result = json.loads(out.read_text())
    assert result["expert_successes"] == 4 and result["standardised"] is True
    first, dagger = result["stages"]
    assert first["training_samples"] == 4 * 100 and dagger["training_samples"] == 6 * 100
    assert first["trials"] == dagger["trials"] == 2 and 0 <= dagger["collected_successes"] <= 2
    assert 0.0 <= first["interval"][0] <= first["successes"] / 2 <= first["interval"][1] <= 1.0
    for stage in (first, dagger):
        assert 0.0 < stage["expert_path_error"] < 10.0 and 0.0 < stage["policy_path_error"] < 10.0
    assert "drift: expert path" in text and "units of the action limits" in text
    assert result["raw_actions"] is False and result["steps"] == 50


def test_raw_actions_fit_and_act_in_the_actions_own_units(family) -> None:
    """A constant label of (0.2, ..., 1.0): fitted in units of the limits or raw, the policy gives it back."""
    label = np.array([0.2, -0.1, 0.05, 1.0, -0.5, 0.0], np.float32)
    data = state_cloning.Rollouts(
        np.random.default_rng(0).normal(size=(64, 21)).astype(np.float32), np.tile(label, (64, 1)), 0, 1
    )
    for scale in (np.asarray(family.action_limits), np.ones(6)):
        net, _ = fit(data, scale, standardise=True, hidden=16, steps=400, batch=32, lr=1e-2, seed=0)
        np.testing.assert_allclose(as_policy(net, family, scale)(data.states[0]), label, atol=0.02)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--family-config", "[1]"], "JSON object"),
        (["--family-config", '{"no_such_option": 1}'], "no_such_option"),
        (["--tasks", "0"], "--tasks must be positive"),
        (["--tasks", "100000"], "training tasks"),
        (["--dagger-rounds", "-1"], "--dagger-rounds"),
        (["--frames-per-demo", "0"], "--frames-per-demo must be positive"),
    ],
)
def test_cli_refuses_bad_input(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert state_cloning.main([*argv, "--no-progress"]) == 2
    assert message in capsys.readouterr().err
