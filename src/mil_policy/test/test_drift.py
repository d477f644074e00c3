"""Closed-loop drift (``drift``): both rollouts of a trial on real MuJoCo reaching, and the CLI end to end."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from mil_policy.demo_arrays import subsample_indices
from mil_policy.drift import at_limit_share, main, path_errors, phases, reversals

STEPS = 20  # the episode length of the reaching_1s fixture (conftest)


@pytest.fixture
def family(reaching_1s):
    assert reaching_1s.episode_steps == STEPS
    return reaching_1s


def _make_env(family):
    task = family.tasks("train")[0]
    return lambda: family.make_env(task, 123, render=True)


def test_a_still_policy_is_measured_on_both_paths(family) -> None:
    """A policy that never moves: on the expert's path its error is the expert's action size; on its own
    path the arm stays where it started, so the expert keeps asking to move long after, on its own path,
    it has arrived and asks for (almost) nothing."""
    acting = list(range(STEPS))
    r = path_errors(family, _make_env(family), lambda: None, lambda img, s: np.zeros(family.action_dim), acting, 5)
    assert r.on_path_error.shape == r.off_path_error.shape == (STEPS,)
    np.testing.assert_allclose(r.on_path_error, r.expert_size_on)
    np.testing.assert_allclose(r.off_path_error, r.expert_size_off)
    assert not r.policy_size_off.any() and not r.success
    late = slice(STEPS * 3 // 4, None)
    assert r.expert_size_off[late].mean() > 10 * r.expert_size_on[late].mean()
    assert r.expert_size_off[0] == pytest.approx(r.expert_size_on[0])  # same scene, same first state
    # Per dimension, the summed errors split over the action's entries.
    assert r.by_dim["policy path error"].shape == (family.action_dim,)
    assert r.by_dim["policy path error"].sum() == pytest.approx(r.off_path_error.mean())
    np.testing.assert_allclose(r.by_dim["policy path error"], r.by_dim["|expert|^2 on policy path"])
    for key in ("expert at limit, its path", "expert at limit, policy path"):  # shares
        assert r.by_dim[key].shape == (family.action_dim,) and ((r.by_dim[key] >= 0) & (r.by_dim[key] <= 1)).all()


def test_at_limit_share_and_reversals_per_dimension() -> None:
    limits = np.array([1.0, 0.4, 2.0])
    actions = [np.array([1.0, 0.2, -2.0]), np.array([-0.995, 0.0, 1.0]), np.array([0.5, -0.4, 1.99])]
    np.testing.assert_allclose(at_limit_share(actions, limits), [2 / 3, 1 / 3, 2 / 3])
    # dim 0: + - + (2 reversals); dim 1: +0.2, 0.0 (below the floor), -0.4 (1); dim 2: - + + (1).
    np.testing.assert_allclose(reversals(actions, limits), [2, 1, 1])
    np.testing.assert_allclose(reversals([np.array([0.1]), np.array([-0.1])], np.array([1.0])), [0])  # dithering


def test_the_policy_acts_only_at_its_acting_steps_and_holds_its_action(family) -> None:
    calls: list[np.ndarray] = []

    def act(image: np.ndarray, state: np.ndarray) -> np.ndarray:
        assert image.ndim == 3 and image.dtype == np.uint8
        calls.append(state)
        return np.full(family.action_dim, 0.05)

    acting = [0, 5, 10, 15]
    r = path_errors(family, _make_env(family), lambda: None, act, acting, 5)
    assert len(calls) == 2 * len(acting)  # once per acting step in each rollout
    assert r.on_path_error.shape == (len(acting),)
    np.testing.assert_allclose(r.policy_size_off, family.action_dim * 0.05**2)
    assert not np.allclose(r.off_path_error, r.on_path_error)  # the policy drove the second rollout


def test_phases_cover_every_step_once() -> None:
    for n in (1, 3, 4, 30, 100):
        got = phases(n)
        assert got[0][0] == 0 and got[-1][1] == n
        assert all(a < b for a, b in got) and all(p[1] == q[0] for p, q in itertools.pairwise(got))


def test_cli_adapts_then_reports_table_json_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], untrained_reaching_1s: Path
) -> None:
    ckpt = untrained_reaching_1s
    out_json, out_png = tmp_path / "drift.json", tmp_path / "drift.png"
    argv = ["--checkpoint", str(ckpt), "--split", "train", "--tasks", "2", "--threads", "1"]
    assert main([*argv, "--json", str(out_json), "--plot", str(out_png)]) == 0
    text = capsys.readouterr().out
    assert "2 train tasks" in text and "expert path" in text and "policy path" in text
    d = json.loads(out_json.read_text())
    assert d["acting_steps"] == list(subsample_indices(STEPS, 6)) and d["tasks"] == 2
    for key in ("on_path_error", "off_path_error", "expert_size_on", "policy_size_off", "expert_size_off"):
        assert len(d[key]) == 6 and all(np.isfinite(d[key]))
    assert out_png.stat().st_size > 10_000
    assert "by action dimension" in text and all(len(v) == 2 for v in d["by_dim"].values())


def test_cli_bad_input_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], untrained_reaching_1s: Path
) -> None:
    assert main(["--checkpoint", str(tmp_path / "missing")]) == 2
    assert "drift:" in capsys.readouterr().err
    ckpt = untrained_reaching_1s
    assert main(["--checkpoint", str(ckpt), "--split", "train", "--tasks", "9999"]) == 2
    assert "9999" in capsys.readouterr().err
