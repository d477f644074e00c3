"""Reaching family (seed paper A.1) in real MuJoCo: expert vs. random success, success criterion,
rendering, held-out colour splits, input validation and determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mil_sim.core import Task, TaskError
from mil_sim.families import get_family
from mil_sim.families.reaching import ROLES, ReachingConfig, ReachingEnv, ReachingFamily, reach_action
from mil_sim.rollout import run_episode

N_TRIALS = 150  # one trial per held-out test task: a 95% claim on 150 trials has a +-2% standard error


@pytest.fixture(scope="module")
def family() -> ReachingFamily:
    return ReachingFamily()


def _success_rate(family: ReachingFamily, policy_for, n: int) -> float:
    """Success over ``n`` test-split trials (task i, trial seed 10_000 + i), without rendering."""
    tasks = family.tasks("test")
    wins = 0
    for i in range(n):
        env = family.make_env(tasks[i % len(tasks)], 10_000 + i, render=False)
        wins += run_episode(family, env, policy_for(env, i), record_images=False).success
    return wins / n


def _pixel(family: ReachingFamily, xy: np.ndarray) -> tuple[int, int]:
    """(row, col) of a floor point in the orthographic top view (image up = +y)."""
    w, h = family.image_size
    scale = h / family.config.arena_size
    return int(h / 2 - xy[1] * scale), int(w / 2 + xy[0] * scale)


def test_expert_succeeds_on_held_out_trials_and_random_policy_rarely(family: ReachingFamily) -> None:
    expert = _success_rate(family, lambda env, i: family.make_expert(env, seed=i, noise=1.0), N_TRIALS)

    def random_policy(env: ReachingEnv, i: int):
        rng = np.random.default_rng(i)
        return lambda obs: family.random_action(rng)

    random = _success_rate(family, random_policy, N_TRIALS)
    print(f"reaching success over {N_TRIALS} held-out trials: expert {expert:.3f}, random {random:.3f}")
    assert expert >= 0.95
    assert random < 0.5
    assert random < expert - 0.4


def test_expert_noise_zero_is_deterministic_and_noise_varies_demos(family: ReachingFamily) -> None:
    task = family.tasks("train")[0]

    def rollout(seed: int, noise: float) -> np.ndarray:
        env = family.make_env(task, 3, render=False)
        return run_episode(family, env, family.make_expert(env, seed, noise), record_images=False).actions

    np.testing.assert_array_equal(rollout(0, 0.0), rollout(1, 0.0))
    assert not np.allclose(rollout(0, 1.0), rollout(1, 1.0))


def test_success_hit_miss_and_only_the_last_steps_count(family: ReachingFamily) -> None:
    task = family.tasks("test")[5]
    cfg = family.config

    def drive(goal_roles: list[str]) -> tuple[bool, np.ndarray]:
        """Reach the discs of ``goal_roles`` in turn, an equal share of the episode each."""
        env = family.make_env(task, 42, render=False)
        assert not env.success()  # nothing has happened yet
        share = family.episode_steps // len(goal_roles)
        counter = iter(range(family.episode_steps))

        def policy(obs):
            role = goal_roles[min(next(counter) // share, len(goal_roles) - 1)]
            return reach_action(obs.state, env.object_position(role), cfg)

        episode = run_episode(family, env, policy, record_images=False)
        assert episode.success == env.success()
        assert env.chosen_role() == goal_roles[-1]  # where the episode ended, whatever it touched before
        assert env.target_distance() == pytest.approx(env.distances()[-1])  # from the target, at the end
        return episode.success, env.distances()

    hit, d = drive(["target"])
    assert hit and d[-1] < cfg.success_radius
    miss, d = drive(["distractor_0"])
    assert not miss and d[-cfg.success_window :].min() > cfg.min_target_separation - cfg.success_radius
    left, d = drive(["target", "distractor_1"])  # touched the target early, then left it
    assert not left and d.min() < cfg.success_radius


def _arm_covers(env: ReachingEnv, xy: np.ndarray) -> bool:
    """Whether a link or the fingertip is drawn over (or next to) the disc at ``xy``."""
    q, l1 = env.joint_positions(), env.config.link_lengths[0]
    elbow = l1 * np.array([np.cos(q[0]), np.sin(q[0])])
    points = [np.zeros(2), elbow, env.robot_state()[2:4].astype(np.float64)]
    clearance = env.config.disc_radius + 0.03  # link radius 0.014, fingertip marker 0.018, one pixel
    for a, b in itertools.pairwise(points):
        t = np.clip(np.dot(xy - a, b - a) / np.dot(b - a, b - a), 0.0, 1.0)
        if np.linalg.norm(a + t * (b - a) - xy) < clearance:
            return True
    return False


def test_rendered_images_show_the_task_colours(family: ReachingFamily) -> None:
    task = family.tasks("test")[0]
    w, h = family.image_size
    assert (w, h) == (80, 64) and family.camera_size == family.image_size
    checked = 0
    for seed in range(6):
        env = family.make_env(task, seed, render=True)
        try:
            obs = env.reset()
            assert obs.image.shape == (h, w, 3) and obs.image.dtype == np.uint8
            assert obs.image.std() > 10
            np.testing.assert_array_equal(env.render_camera(), obs.image)
            for role in ROLES:
                xy = env.object_position(role)
                if _arm_covers(env, xy):
                    continue
                checked += 1
                rgb = np.round(family.color_rgb(task.objects[role]) * 255)
                near = np.all(np.abs(obs.image.astype(int) - rgb) <= 4, axis=-1)
                assert near.sum() >= 5, f"{role} colour not visible (seed {seed})"
                row, col = _pixel(family, xy)  # and it is where the camera model puts the disc
                assert near[row - 1 : row + 2, col - 1 : col + 2].any(), f"{role} misplaced (seed {seed})"
            if seed == 0:
                episode = run_episode(family, env, family.make_expert(env, 0), steps=5)
                assert episode.images.shape == (5, h, w, 3)
                assert not np.array_equal(episode.images[0], episode.images[-1])  # the arm moved
        finally:
            env.close()
    assert checked >= 12
    blind = family.make_env(task, 7, render=False).reset()
    assert blind.image.shape == (0, 0, 3) and blind.image.dtype == np.uint8


def test_image_size_is_configurable() -> None:
    family = ReachingFamily(ReachingConfig(image_size=(120, 96)))
    env = family.make_env(family.tasks("val")[0], 1)
    try:
        assert env.reset().image.shape == (96, 120, 3)
        with pytest.raises(ValueError, match=r"\(96, 120, 3\)"):
            family.preprocess(np.zeros((64, 80, 3), np.uint8))
    finally:
        env.close()


def test_colour_splits_are_disjoint_and_tasks_fixed(family: ReachingFamily) -> None:
    train, val, test = (set(family.objects(s)) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert len(train | val | test) == family.config.n_colors
    assert [len(family.tasks(s)) for s in ("train", "val", "test")] == [500, 50, 150]
    for split, colours in (("train", train), ("val", val), ("test", test)):
        tasks = family.tasks(split)
        assert len({tuple(t.objects.values()) for t in tasks}) == len(tasks)
        assert all(set(t.objects.values()) <= colours and t.split == split for t in tasks)
    assert ReachingFamily().tasks("test") == family.tasks("test")
    listed = family.tasks("test")[3]
    assert family.make_task("test", **listed.objects) == listed
    assert family.task(listed.task_id) == listed
    assert Task.from_json(listed.to_json()) == listed
    assert isinstance(get_family("reaching"), ReachingFamily)


def test_small_held_out_pools_borrow_distractors_from_val_and_test_never_train() -> None:
    family = get_family("reaching", n_val_colors=1, n_test_colors=2, val_tasks=2, test_tasks=4)
    held_out = set(family.objects("val")) | set(family.objects("test"))
    for split in ("val", "test"):
        tasks = family.tasks(split)
        assert len(tasks) == len({tuple(t.objects.values()) for t in tasks}) == {"val": 2, "test": 4}[split]
        for t in tasks:
            assert t.objects["target"] in family.objects(split)
            assert set(t.objects.values()) <= held_out
    with pytest.raises(TaskError, match="exceeds the 4 distinct test tasks"):
        ReachingFamily(ReachingConfig(n_val_colors=1, n_test_colors=2, val_tasks=2, test_tasks=5))


def test_bad_input_raises_task_error(family: ReachingFamily) -> None:
    test_ids, train_ids = family.objects("test"), family.objects("train")
    ok = {"target": test_ids[0], "distractor_0": test_ids[1], "distractor_1": test_ids[2]}
    with pytest.raises(TaskError, match="unknown colour id 'color_999'"):
        family.make_task("test", **{**ok, "target": "color_999"})
    with pytest.raises(TaskError, match="unknown colour id 'red'"):
        family.make_task("test", **{**ok, "distractor_1": "red"})
    with pytest.raises(TaskError, match=f"'{train_ids[0]}'.*is a train colour, not allowed in a test"):
        family.make_task("test", **{**ok, "target": train_ids[0]})
    with pytest.raises(TaskError, match="is a train colour"):
        family.make_task("test", **{**ok, "distractor_0": train_ids[0]})
    with pytest.raises(TaskError, match="is a test colour, not allowed in a train"):
        family.make_task("train", target=test_ids[0], distractor_0=train_ids[0], distractor_1=train_ids[1])
    with pytest.raises(TaskError, match="must differ"):
        family.make_task("test", **{**ok, "distractor_1": ok["target"]})
    with pytest.raises(TaskError, match="exactly the roles"):
        family.make_task("test", target=test_ids[0])
    with pytest.raises(TaskError, match="unknown split 'holdout'"):
        family.make_task("holdout", **ok)
    with pytest.raises(TaskError, match="unknown split"):
        family.tasks("training")
    for steps in (0, -5):
        with pytest.raises(TaskError, match=rf"episode_steps must be positive, got {steps}"):
            ReachingConfig(episode_steps=steps)
    with pytest.raises(TaskError, match="episode_steps must be positive"):
        get_family("reaching", episode_steps=0)
    with pytest.raises(TaskError, match="control_rate_hz must be positive"):
        ReachingConfig(control_rate_hz=0)
    with pytest.raises(TaskError, match="trial_seed"):
        family.make_env(family.tasks("test")[0], -1)
    forged = Task("reaching", "reaching/test/x", "test", {**ok, "target": train_ids[0]})
    with pytest.raises(TaskError, match="is a train colour"):
        family.make_env(forged, 0)


def test_trial_seed_decides_layout(family: ReachingFamily) -> None:
    tasks = family.tasks("test")
    a, b = (family.make_env(tasks[0], 5, render=False) for _ in range(2))
    obs_a, obs_b = a.reset(), b.reset()
    np.testing.assert_array_equal(obs_a.state, obs_b.state)
    assert all(np.array_equal(a.object_position(r), b.object_position(r)) for r in ROLES)
    a.step(np.array([1.0, -1.0]))
    np.testing.assert_array_equal(a.reset().state, obs_a.state)  # reset restores the same trial
    other = family.make_env(tasks[0], 6, render=False)
    other.reset()
    assert not np.array_equal(other.object_position("target"), a.object_position("target"))
    cfg = family.config
    for seed in range(200):
        env = family.make_env(tasks[1], seed, render=False)
        obs = env.reset()
        xy = np.array([env.object_position(r) for r in ROLES])
        radii = np.linalg.norm(xy, axis=1)
        assert np.all((radii >= cfg.target_radius_range[0]) & (radii <= cfg.target_radius_range[1]))
        pairs = [np.linalg.norm(xy[i] - xy[j]) for i in range(3) for j in range(i + 1, 3)]
        assert min(pairs) >= cfg.min_target_separation
        assert np.linalg.norm(obs.state[2:4] - xy[0]) >= cfg.min_start_distance


def test_robot_interface_and_speed(family: ReachingFamily) -> None:
    assert family.action_kind == "joint_effort" and family.action_dim == 2
    assert family.horizon == family.episode_steps == 50 and family.camera_every == 1
    env = family.make_env(family.tasks("val")[0], 11, render=False)
    obs = env.reset()
    assert obs.state.dtype == np.float32 and obs.state.shape == (len(family.state_names),)
    assert env.joint_names() == ("joint0", "joint1") and env.gripper_is_open()
    episode = run_episode(family, env, family.make_expert(env, 0), record_images=False)
    np.testing.assert_allclose(episode.times[1], 1.0 / family.control_rate_hz)
    pose = env.ee_pose()
    np.testing.assert_allclose(pose[:2], env.robot_state()[2:4], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(pose[3:]), 1.0)
    yaw = 2.0 * np.arctan2(pose[6], pose[3])  # rotation about z only
    q = env.joint_positions()
    np.testing.assert_allclose(np.cos(yaw), np.cos(q.sum()), atol=1e-6)
    np.testing.assert_allclose(np.sin(yaw), np.sin(q.sum()), atol=1e-6)
    np.testing.assert_allclose(pose[4:6], 0.0, atol=1e-9)  # no roll or pitch
    np.testing.assert_allclose(episode.joint_positions, episode.states[:, :2], atol=1e-5)
