"""The placing family on real MuJoCo: expert, random policy, success check, camera, split, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from mil_sim.core import TaskError
from mil_sim.families import get_family
from mil_sim.families.placing import PlacingConfig, PlacingEnv, PlacingFamily
from mil_sim.rollout import run_episode


@pytest.fixture(scope="module")
def family() -> PlacingFamily:
    return PlacingFamily()


def _hold_still(_obs: object) -> np.ndarray:
    return np.zeros(6, dtype=np.float32)


def test_expert_succeeds_on_held_out_trials(family: PlacingFamily) -> None:
    """>= 95% of held-out placing trials: 60 trials over 60 different test tasks."""
    tasks = family.tasks("test")[:60]
    wins = 0
    for i, task in enumerate(tasks):
        env = family.make_env(task, trial_seed=1000 + i, render=False)
        wins += run_episode(family, env, family.make_expert(env, seed=i), record_images=False).success
    assert wins / len(tasks) >= 0.95, f"expert succeeded on {wins}/{len(tasks)}"


def test_random_policy_rarely_succeeds(family: PlacingFamily) -> None:
    rng = np.random.default_rng(0)
    tasks = family.tasks("test")[:40]
    wins = 0
    for i, task in enumerate(tasks):
        env = family.make_env(task, trial_seed=i, render=False)
        wins += run_episode(family, env, lambda _o: family.random_action(rng), record_images=False).success
    assert wins / len(tasks) <= 0.15, f"random policy succeeded on {wins}/{len(tasks)}"


def _drop_over(env: PlacingEnv, role: str, family: PlacingFamily) -> bool:
    """Drive the tool over a container's centre (closed-loop, no expert) and drop: the hit/miss probe."""
    env.reset()
    c = env.container_specs[role]
    goal = env.container_position(role) + np.array([0.0, 0.0, c.height + env.held_spec.half_extent + 0.04])
    for _ in range(family.episode_steps):
        pos = env.ee_pose()[:3]
        env.step(np.concatenate([np.clip(3.0 * (goal - pos), -0.25, 0.25), np.zeros(3)]))
    env.end_episode()
    return env.success()


def test_success_check_hit_and_miss(family: PlacingFamily) -> None:
    task = family.tasks("test")[1]
    env = family.make_env(task, trial_seed=3, render=False)
    assert _drop_over(env, "target", family) is True
    assert env.item_in_container("target") and env.chosen_role() == "target"
    assert env.target_distance() < env.container_specs["target"].inner_radius
    assert _drop_over(env, "distractor_0", family) is False
    assert env.item_in_container("distractor_0") and env.chosen_role() == "distractor_0"
    between = np.linalg.norm(env.container_position("distractor_0")[:2] - env.container_position("target")[:2])
    assert abs(env.target_distance() - between) < env.container_specs["distractor_0"].inner_radius
    # Not scored before the gripper opened, even when the item hangs over the target.
    env.reset()
    assert env.success() is False


def test_success_requires_the_item_to_land(family: PlacingFamily) -> None:
    """Holding still at the start and opening drops the item on the table: a miss."""
    env = family.make_env(family.tasks("test")[2], trial_seed=4, render=False)
    episode = run_episode(family, env, _hold_still, record_images=False)
    assert episode.success is False
    assert env.held_position()[2] < 0.7  # it fell


def test_camera_images_have_configured_shape_and_content() -> None:
    fam = get_family("placing", camera_width=160, camera_height=120, downsample=1, image_width=64, image_height=48)
    env = fam.make_env(fam.tasks("test")[0], trial_seed=0, render=True)
    obs = env.reset()
    assert obs.image.shape == (48, 64, 3) and obs.image.dtype == np.uint8
    cam = env.render_camera()
    assert cam.shape == (120, 160, 3)
    assert cam.std() > 10.0, "camera image is blank"
    env.close()


def test_default_resolution_is_the_papers(family: PlacingFamily) -> None:
    """Appendix A.3: 320x240 camera, downsampled by 2 and cropped to 100x90."""
    env = family.make_env(family.tasks("val")[0], trial_seed=0, render=True)
    obs = env.reset()
    assert env.render_camera().shape == (240, 320, 3)
    assert obs.image.shape == (90, 100, 3)
    assert obs.image.std() > 10.0
    # The target container's colour shows up in the policy image.
    target_rgb = np.array(env.container_specs["target"].rgba[:3]) * 255
    distances = np.linalg.norm(obs.image.reshape(-1, 3).astype(float) - target_rgb, axis=1)
    assert (distances < 60).sum() > 5
    env.close()
    with pytest.raises(ValueError, match="expected"):
        family.preprocess(np.zeros((90, 100, 3), np.uint8))


def test_split_is_fixed_and_disjoint(family: PlacingFamily) -> None:
    train, val, test = (set(family.objects(s)) for s in ("train", "val", "test"))
    assert not train & test and not train & val and not val & test
    assert len(family.catalogue.container_split["test"]) == 29  # the paper's held-out object count
    for task in family.tasks("train"):
        assert set(task.objects.values()) <= train
    for task in family.tasks("test"):
        assert set(task.objects.values()) <= test
    assert PlacingFamily().tasks("test") == family.tasks("test")  # seeded, not random per process


def test_trial_seed_fixes_the_layout(family: PlacingFamily) -> None:
    task = family.tasks("train")[5]
    a, b, c = (family.make_env(task, s, render=False) for s in (11, 11, 12))
    for env in (a, b, c):
        env.reset()
    assert np.allclose(a.container_position("target"), b.container_position("target"))
    assert not np.allclose(a.container_position("target"), c.container_position("target"))


def test_expert_demos_differ_with_noise(family: PlacingFamily) -> None:
    task = family.tasks("train")[0]
    actions = []
    for seed in (0, 1):
        env = family.make_env(task, trial_seed=7, render=False)
        actions.append(run_episode(family, env, family.make_expert(env, seed), record_images=False).actions)
    assert not np.allclose(actions[0], actions[1])


def test_bad_input_gives_clear_errors(family: PlacingFamily) -> None:
    with pytest.raises(TaskError, match="unknown task family 'stacking'"):
        get_family("stacking")
    test_held = family.catalogue.held_split["test"][0]
    train_cont = family.catalogue.container_split["train"]
    with pytest.raises(TaskError, match=r"not in the train split .*belongs to the test split"):
        family.make_task(
            "train", held=test_held, target=train_cont[0], distractor_0=train_cont[1], distractor_1=train_cont[2]
        )
    with pytest.raises(TaskError, match="no such object"):
        family.make_task(
            "train", held="held_999", target=train_cont[0], distractor_0=train_cont[1], distractor_1=train_cont[2]
        )
    with pytest.raises(TaskError, match="horizon must be positive"):
        PlacingConfig(horizon=0)
    with pytest.raises(TaskError, match="episode_seconds must be positive"):
        PlacingConfig(episode_seconds=-1.0)
    with pytest.raises(TaskError, match="unknown split"):
        family.tasks("holdout")
    with pytest.raises(TaskError, match="unknown task id"):
        family.task("placing/test/100000")
    with pytest.raises(ValueError, match="6 finite numbers"):
        family.clip_action(np.array([np.nan] * 6))
    assert family.is_valid_action(np.zeros(6, np.float32))
    for bad in (np.zeros(5), np.zeros((1, 6)), np.array([0, 0, 0, np.inf, 0, 0])):
        assert not family.is_valid_action(bad)
