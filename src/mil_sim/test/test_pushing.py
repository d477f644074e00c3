"""Pushing family (seed paper 6.2, A.2) in real MuJoCo: expert vs. random success, the 10-step success
criterion, rendering, held-out object splits, input validation and determinism."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import mujoco
import numpy as np
import pytest

from mil_sim.core import MOVED_NONE, Task, TaskError
from mil_sim.demo_bag import read_episode, write_episode
from mil_sim.families import get_family
from mil_sim.families.pushing import (
    OBJECT_X,
    OBJECT_Y,
    PUSH_DISTANCE,
    ROLES,
    TABLE_CENTRE,
    TABLE_HALF,
    PushingConfig,
    PushingEnv,
    PushingFamily,
    sample_layout,
)
from mil_sim.kinematics import site_jacobian
from mil_sim.perturbation import GaussianPerturbation
from mil_sim.pr2_arm import ARM_JOINT_NAMES
from mil_sim.rollout import run_episode

# One trial per held-out test task (the paper's 74 test tasks, built from the 11 test objects).
N_TRIALS = 74
ZERO = np.zeros(7, dtype=np.float32)


@pytest.fixture(scope="module")
def family() -> PushingFamily:
    return PushingFamily()


def _trials(family: PushingFamily, policy_for, n: int, seed0: int) -> tuple[list[bool], list[str]]:
    """``n`` test-split trials (task i, trial seed seed0 + i) without rendering: each one's success and the
    object it moved most."""
    tasks = family.tasks("test")
    wins, moved = [], []
    for i in range(n):
        env = family.make_env(tasks[i % len(tasks)], seed0 + i, render=False)
        wins.append(run_episode(family, env, policy_for(env, i), record_images=False).success)
        moved.append(env.moved_role())
    return wins, moved


def _success_rate(family: PushingFamily, policy_for, n: int, seed0: int) -> float:
    """Success over ``n`` test-split trials, as ``_trials`` runs them."""
    wins, _ = _trials(family, policy_for, n, seed0)
    return sum(wins) / n


def test_expert_succeeds_on_held_out_trials_and_random_policy_rarely(family: PushingFamily) -> None:
    def expert_policy(env: PushingEnv, i: int):
        return family.make_expert(env, seed=i, noise=1.0)

    expert_wins, expert_moved = _trials(family, expert_policy, N_TRIALS, 10_000)

    def random_policy(env: PushingEnv, i: int):
        rng = np.random.default_rng(i)
        return lambda obs: family.random_action(rng)

    random_wins, random_moved = _trials(family, random_policy, N_TRIALS, 20_000)
    expert, random = sum(expert_wins) / N_TRIALS, sum(random_wins) / N_TRIALS
    print(f"pushing success over {N_TRIALS} held-out trials: expert {expert:.3f}, random {random:.3f}")
    print(f"moved most: expert {Counter(expert_moved)}, random {Counter(random_moved)}")
    assert expert >= 0.95
    assert random <= 0.1
    assert expert_moved.count("target") >= 0.95 * N_TRIALS  # the expert goes for the target


def test_end_effector_twist_actions_drive_the_same_expert_to_success() -> None:
    """With ``action_space="ee_twist"`` the policy sends a tool twist that the env's Cartesian controller
    tracks; the expert sends the velocities it would otherwise turn into torques, and still pushes."""
    twist = PushingFamily(PushingConfig(action_space="ee_twist"))
    assert (twist.action_kind, twist.action_dim) == ("ee_twist", 6)

    def expert_policy(env: PushingEnv, i: int):
        return twist.make_expert(env, seed=i, noise=1.0)

    assert _success_rate(twist, expert_policy, 12, 10_000) >= 11 / 12

    def random_policy(env: PushingEnv, i: int):
        rng = np.random.default_rng(i)
        return lambda obs: twist.random_action(rng)

    assert _success_rate(twist, random_policy, 12, 20_000) <= 1 / 12
    # Commands are clipped to the twist limits; a zero twist holds the arm where it is (no sagging).
    lin, ang = twist.config.twist_limits
    np.testing.assert_array_equal(twist.clip_action(np.array([9.0, -9, 0, 9, 0, -9])), [lin, -lin, 0, ang, 0, -ang])
    env = twist.make_env(twist.tasks("test")[0], 0, render=False)
    env.reset()
    start = env.tip_position()
    for _ in range(20):
        env.step(np.zeros(6))
    assert np.linalg.norm(env.tip_position() - start) < 0.005
    env.step(np.array([0.2, 0, 0, 0, 0, 0]))
    env.step(np.array([0.2, 0, 0, 0, 0, 0]))
    assert 0.1 < float(twist_velocity(env)[0]) < 0.3  # moving along +x at about the commanded speed
    with pytest.raises(ValueError, match="6 finite numbers"):
        env.step(np.zeros(7))
    with pytest.raises(TaskError, match="action_space must be one of"):
        PushingConfig(action_space="joint_velocity")
    with pytest.raises(TaskError, match="below 1/physics_timestep"):
        PushingConfig(twist_gains=(600.0, 60.0))


def test_round_pusher_needs_no_yaw_and_the_expert_still_pushes() -> None:
    """``pusher="round"`` swaps the paddle for a puck: the layout and the expert size their stand-offs by
    it, the expert only keeps it upright (its yaw command is zero whatever the tool's yaw), and it still
    pushes held-out objects onto the goal."""
    family = PushingFamily(PushingConfig(action_space="ee_twist", pusher="round"))

    def expert_policy(env: PushingEnv, i: int):
        return family.make_expert(env, seed=i, noise=1.0)

    assert _success_rate(family, expert_policy, 12, 10_000) >= 11 / 12
    env = family.make_env(family.tasks("test")[0], 0, render=False)
    env.reset()
    assert env.model.geom_type[env.model.geom("pusher").id] == mujoco.mjtGeom.mjGEOM_CYLINDER
    for _ in range(5):  # turn the tool about the vertical: the expert does not turn it back
        obs = env.step(np.array([0.0, 0, 0, 0, 0, 2.0]))
    expert = family.make_expert(env, seed=0, noise=0.0)
    assert abs(float(expert(obs)[5])) < 0.05
    paddle = PushingFamily(PushingConfig(action_space="ee_twist"))
    env = paddle.make_env(paddle.tasks("test")[0], 0, render=False)
    env.reset()
    for _ in range(5):
        obs = env.step(np.array([0.0, 0, 0, 0, 0, 2.0]))
    expert = paddle.make_expert(env, seed=0, noise=0.0)
    assert abs(float(expert(obs)[5])) > 0.5  # the paddle's face is turned back square
    with pytest.raises(TaskError, match="pusher must be one of"):
        PushingConfig(pusher="sphere")


def test_hold_tool_upright_ignores_the_commanded_turn_and_the_expert_still_pushes() -> None:
    """With ``hold_tool_upright`` the sim's Cartesian controller keeps the round tool pointing down and
    ignores the angular part of the command: a tilting command tilts the tool without it, not with it."""
    configs = {
        held: PushingConfig(action_space="ee_twist", pusher="round", hold_tool_upright=held) for held in (False, True)
    }
    tilt = {}
    for held, config in configs.items():
        family = PushingFamily(config)
        env = family.make_env(family.tasks("test")[0], 0, render=False)
        env.reset()
        for _ in range(10):
            env.step(np.array([0.05, 0, 0, 1.0, 0, 0]))  # along +x, rolling about x
        tool_axis = env.data.site_xmat[env.tip_site].reshape(3, 3)[:, 0]  # points down when upright
        tilt[held] = float(np.degrees(np.arccos(np.clip(-tool_axis[2], -1.0, 1.0))))
        assert float(twist_velocity(env)[0]) > 0.02  # the linear command is obeyed either way
    assert tilt[False] > 10.0 and tilt[True] < 2.0, tilt
    family = PushingFamily(configs[True])

    def expert_policy(env: PushingEnv, i: int):
        return family.make_expert(env, seed=i, noise=1.0)

    assert _success_rate(family, expert_policy, 12, 10_000) >= 11 / 12
    with pytest.raises(TaskError, match="hold_tool_upright needs"):
        PushingConfig(action_space="ee_twist", hold_tool_upright=True)
    with pytest.raises(TaskError, match="hold_tool_upright needs"):
        PushingConfig(pusher="round", hold_tool_upright=True)


UPRIGHT = {"action_space": "ee_twist", "pusher": "round", "hold_tool_upright": True}


def _labels_of_fresh_experts(family: PushingFamily, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """One noise-free episode driven by an expert, and at every step also the label of a *new* expert of
    the same seed asked about that scene: what DAgger does when it relabels a state the policy reached."""
    env = family.make_env(family.tasks("train")[0], 5, render=False)
    try:
        obs = env.reset()
        driver = family.make_expert(env, 0, 0.0)
        driven, fresh = [], []
        for _ in range(steps):
            action = driver(obs)
            driven.append(action)
            fresh.append(family.make_expert(env, 0, 0.0)(obs))
            obs = env.step(action)
    finally:
        env.close()
    return np.array(driven), np.array(fresh)


@pytest.mark.parametrize("extra", [{}, UPRIGHT], ids=["paddle_torques", "round_upright_twist"])
def test_stateless_expert_pushes_and_labels_a_scene_the_same_whatever_came_before(extra: dict) -> None:
    """``expert: stateless`` decides its mode from the scene alone; the phased expert's label depends on
    the phase it reached the scene in, so a new phased expert asked mid-episode disagrees with the one
    that drove there, and a new stateless one agrees at every step."""
    family = PushingFamily(PushingConfig(expert="stateless", **extra))
    assert _success_rate(family, lambda env, i: family.make_expert(env, seed=i, noise=1.0), 12, 10_000) >= 11 / 12
    driven, fresh = _labels_of_fresh_experts(family, 60)
    np.testing.assert_allclose(fresh, driven, atol=1e-6)
    driven, fresh = _labels_of_fresh_experts(PushingFamily(PushingConfig(**extra)), 60)
    assert np.abs(fresh - driven).max(axis=1).max() > 0.05  # the phased one: a fresh expert starts over
    with pytest.raises(TaskError, match="expert must be one of"):
        PushingConfig(expert="markov")


def test_privileged_state_carries_the_true_target_and_goal_and_round_trips_a_bag(tmp_path: Path) -> None:
    """``privileged_state`` (a diagnostic: cloning without perception) appends the target's and the goal's
    true x, y to the robot state, named in ``state_names``; the robot part and the expert are unchanged."""
    plain = PushingFamily(PushingConfig(action_space="ee_twist", pusher="round", hold_tool_upright=True))
    family = PushingFamily(
        PushingConfig(action_space="ee_twist", pusher="round", hold_tool_upright=True, privileged_state=True)
    )
    assert family.state_names == (*plain.state_names, "target_x", "target_y", "goal_x", "goal_y")
    task = family.tasks("train")[2]
    env, plain_env = family.make_env(task, 9, render=True), plain.make_env(task, 9, render=True)
    episode = run_episode(family, env, family.make_expert(env, 4, 1.0))
    plain_episode = run_episode(plain, plain_env, plain.make_expert(plain_env, 4, 1.0))
    assert episode.success and episode.states.shape == (family.episode_steps, len(family.state_names))
    np.testing.assert_array_equal(episode.states[:, :17], plain_episode.states)
    np.testing.assert_allclose(episode.states[-1, 17:19], env.object_position("target")[:2], atol=0.01)
    np.testing.assert_allclose(episode.states[:, 19:], np.tile(env.goal_position()[:2], (len(episode), 1)), atol=1e-6)
    assert np.linalg.norm(episode.states[-1, 17:19] - episode.states[0, 17:19]) > 0.05  # the target moved
    bag = read_episode(write_episode(tmp_path / "demo", episode, family.state_names))
    np.testing.assert_array_equal(bag.states, episode.states)


def test_state_without_joint_velocities_drops_exactly_them_and_keeps_the_rest() -> None:
    """``state_joint_velocities=False`` (the copycat check): the same episode, the seven ``qd_`` entries
    gone from the state and its names, the privileged entries still last; physics and expert unchanged."""
    base = {"action_space": "ee_twist", "pusher": "round", "hold_tool_upright": True, "privileged_state": True}
    full, lean = (
        PushingFamily(PushingConfig(**base)),
        PushingFamily(PushingConfig(**base, state_joint_velocities=False)),
    )
    kept = [i for i, name in enumerate(full.state_names) if not name.startswith("qd_")]
    assert len(kept) == len(full.state_names) - 7 and lean.state_names == tuple(full.state_names[i] for i in kept)
    assert lean.state_names[-4:] == ("target_x", "target_y", "goal_x", "goal_y")
    task = full.tasks("train")[1]
    episodes = []
    for fam in (full, lean):
        env = fam.make_env(task, 3, render=False)
        episodes.append(run_episode(fam, env, fam.make_expert(env, 5, 1.0), record_images=False))
        env.close()
    np.testing.assert_array_equal(episodes[1].states, episodes[0].states[:, kept])
    np.testing.assert_array_equal(episodes[1].targets, episodes[0].targets)
    assert episodes[1].success


def twist_velocity(env: PushingEnv) -> np.ndarray:
    """The tip's linear velocity (world frame)."""
    jac = site_jacobian(env.model, env.data, env.tip_site, env.arm_dofs)
    return (jac @ env.joint_velocities())[:3]


def test_expert_noise_zero_is_deterministic_and_noise_varies_demos(family: PushingFamily) -> None:
    task = family.tasks("train")[0]

    def rollout(seed: int, noise: float) -> tuple[np.ndarray, bool]:
        env = family.make_env(task, 3, render=False)
        expert = family.make_expert(env, seed, noise)  # built before the reset run_episode does
        episode = run_episode(family, env, expert, record_images=False)
        return episode.actions, episode.success

    quiet_a, ok_a = rollout(0, 0.0)
    quiet_b, ok_b = rollout(1, 0.0)
    np.testing.assert_array_equal(quiet_a, quiet_b)
    noisy_a, ok_c = rollout(0, 1.0)
    noisy_b, ok_d = rollout(1, 1.0)
    assert not np.allclose(noisy_a, noisy_b)
    assert ok_a and ok_b and ok_c and ok_d
    assert np.all(np.abs(noisy_a) <= 1.0)


def test_success_needs_ten_steps_on_the_goal_counted_over_the_episode(family: PushingFamily) -> None:
    env = family.make_env(family.tasks("test")[4], 7, render=False)
    env.reset()
    goal = env.goal_position()[:2]
    radius = family.config.goal_radius
    assert radius == 0.06 and family.config.success_steps == 10
    assert not env.success() and env.on_goal_steps == 0

    assert env.moved_role() == MOVED_NONE
    env.set_object_pose("distractor", goal)  # the wrong object on the goal never counts
    for _ in range(12):
        env.step(ZERO)
    assert env.on_goal_steps == 0 and not env.success() and env.chosen_role() == "distractor"
    assert env.moved_role() == "distractor"
    env.reset()
    assert env.moved_role() == MOVED_NONE  # measured from where this episode put the objects

    env.set_object_pose("target", goal + np.array([0.03, 0.0]))
    for _ in range(9):
        env.step(ZERO)
    assert env.on_goal_steps == 9 and not env.success()  # 9 steps: a miss
    assert env.chosen_role() == "target" and env.target_distance() == pytest.approx(0.03, abs=0.01)
    env.set_object_pose("target", goal + np.array([radius + 0.01, 0.0]))  # just off the circle
    for _ in range(5):
        env.step(ZERO)
    assert env.on_goal_steps == 9 and not env.success()
    env.set_object_pose("target", goal + np.array([0.0, -(radius - 0.01)]))  # just on it again
    env.step(ZERO)
    assert env.on_goal_steps == 10 and env.success()  # 10 steps, not necessarily in a row, as the paper
    env.end_episode()  # nothing happens after the last step
    assert env.success()
    env.reset()
    assert not env.success()  # a new episode starts counting afresh

    idle = run_episode(family, env, lambda obs: ZERO, record_images=False)  # doing nothing: a miss
    assert not idle.success and env.on_goal_steps == 0


def _visible_pixels(env: PushingEnv) -> dict[str, int]:
    """Pixels of each object and of the goal in a segmentation render of the scene camera."""
    renderer = mujoco.Renderer(env.model, env.config.image_height, env.config.image_width)
    try:
        renderer.enable_segmentation_rendering()
        renderer.update_scene(env.data, camera="scene_camera")
        seg = renderer.render()
    finally:
        renderer.close()
    is_geom = seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)
    body = env.model.geom_bodyid[np.clip(seg[..., 0], 0, None)]
    return {name: int(np.sum(is_geom & (body == env.model.body(name).id))) for name in (*ROLES, "goal")}


def test_rendered_images_show_the_scene(family: PushingFamily) -> None:
    assert family.image_size == family.camera_size == (125, 125)
    task = family.tasks("test")[0]
    for seed in range(3):
        env = family.make_env(task, seed, render=True)
        try:
            obs = env.reset()
            assert obs.image.shape == (125, 125, 3) and obs.image.dtype == np.uint8
            assert obs.image.std() > 10  # not blank
            assert family.preprocess(obs.image) is obs.image
            np.testing.assert_array_equal(env.render_camera(), obs.image)
            seen = _visible_pixels(env)
            assert min(seen.values()) >= 20, seen  # target, distractor and goal all in view, unoccluded
            red = (obs.image[..., 0] > 170) & (obs.image[..., 1] < 60) & (obs.image[..., 2] < 60)
            assert red.sum() >= 0.5 * seen["goal"]  # the goal is drawn red
            if seed == 0:
                episode = run_episode(family, env, family.make_expert(env, 0), steps=6)
                assert episode.images.shape == (6, 125, 125, 3)
                assert not np.array_equal(episode.images[0], episode.images[-1])  # the arm moved
        finally:
            env.close()
    with pytest.raises(ValueError, match=r"\(125, 125, 3\)"):
        family.preprocess(np.zeros((90, 100, 3), np.uint8))
    blind = family.make_env(task, 7, render=False).reset()
    assert blind.image.shape == (0, 0, 3)


def test_image_size_is_configurable() -> None:
    family = get_family("pushing", image_width=96, image_height=64)
    env = family.make_env(family.tasks("val")[0], 1)
    try:
        assert env.reset().image.shape == (64, 96, 3)
        assert family.image_size == family.camera_size == (96, 64)
        with pytest.raises(ValueError, match=r"\(64, 96, 3\)"):
            family.preprocess(np.zeros((125, 125, 3), np.uint8))
    finally:
        env.close()


def test_object_splits_are_disjoint_and_tasks_fixed(family: PushingFamily) -> None:
    train, val, test = (set(family.objects(s)) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (105, 12, 11)  # the paper's 105 + 11, plus a val split
    assert not (train & val or train & test or val & test)
    assert all(o.startswith("push_obj_") for o in train | val | test)
    specs = family.catalogue.objects
    assert len({specs[o].kind for o in train}) == 10  # shapes, sizes, looks and physics all vary
    assert len({specs[o].rgba for o in train}) == 105
    assert np.ptp([specs[o].friction for o in train]) > 0.4 and np.ptp([specs[o].mass for o in train]) > 0.3
    assert [len(family.tasks(s)) for s in ("train", "val", "test")] == [420, 36, 74]
    for split, pool in (("train", train), ("val", val), ("test", test)):
        tasks = family.tasks(split)
        assert len({tuple(t.objects.values()) for t in tasks}) == len(tasks)  # no repeated pair
        assert all(set(t.objects.values()) <= pool and t.split == split for t in tasks)
        assert {t.objects["target"] for t in tasks} == pool  # every object is a target
    assert PushingFamily().tasks("test") == family.tasks("test")
    listed = family.tasks("test")[3]
    assert family.make_task("test", **listed.objects).objects == listed.objects
    assert family.task(listed.task_id) == listed
    assert Task.from_json(listed.to_json()) == listed
    assert isinstance(get_family("pushing"), PushingFamily)


def test_bad_input_raises_task_error(family: PushingFamily) -> None:
    test_ids, train_ids = family.objects("test"), family.objects("train")
    ok = {"target": test_ids[0], "distractor": test_ids[1]}
    with pytest.raises(TaskError, match=r"'push_obj_999'.*no such object"):
        family.make_task("test", **{**ok, "target": "push_obj_999"})
    with pytest.raises(TaskError, match=rf"'{train_ids[0]}'.*not in the test split.*belongs to the train"):
        family.make_task("test", **{**ok, "distractor": train_ids[0]})
    with pytest.raises(TaskError, match=r"not in the train split.*belongs to the test split"):
        family.make_task("train", target=test_ids[0], distractor=train_ids[0])
    with pytest.raises(TaskError, match="must be different"):
        family.make_task("test", target=test_ids[0], distractor=test_ids[0])
    with pytest.raises(TaskError, match="needs roles"):
        family.make_task("test", target=test_ids[0])
    with pytest.raises(TaskError, match="unknown split 'holdout'"):
        family.make_task("holdout", **ok)
    with pytest.raises(TaskError, match="unknown split"):
        family.tasks("training")
    for steps in (0, -5):
        with pytest.raises(TaskError, match=rf"episode_steps must be positive, got {steps}"):
            PushingConfig(episode_steps=steps)
    with pytest.raises(TaskError, match="episode_steps must be positive"):
        get_family("pushing", episode_steps=0)
    with pytest.raises(TaskError, match="image_width must be positive"):
        PushingConfig(image_width=0)
    with pytest.raises(TaskError, match="horizon must be positive"):
        PushingConfig(horizon=-1)
    with pytest.raises(TaskError, match="fewer than horizon"):
        PushingConfig(episode_steps=50)
    with pytest.raises(TaskError, match="success_steps 10 exceeds"):
        PushingConfig(episode_steps=8, horizon=8)
    with pytest.raises(TaskError, match="whole multiple"):
        PushingConfig(physics_timestep=0.003)
    with pytest.raises(TaskError, match="trial_seed"):
        family.make_env(family.tasks("test")[0], -1)
    forged = Task("pushing", "pushing/test/x", "test", {**ok, "target": train_ids[0]})
    with pytest.raises(TaskError, match="belongs to the train split"):
        family.make_env(forged, 0)
    with pytest.raises(TaskError, match="belongs to family 'placing'"):
        family.make_env(Task("placing", "placing/test/0", "test", ok), 0)
    env = family.make_env(family.tasks("test")[0], 0, render=False)
    env.reset()
    with pytest.raises(ValueError, match="7 finite joint torques"):
        env.step(np.zeros(6))
    with pytest.raises(ValueError, match="7 finite joint torques"):
        env.step(np.full(7, np.nan))


def test_trial_seed_decides_layout(family: PushingFamily) -> None:
    tasks = family.tasks("test")
    a, b = (family.make_env(tasks[0], 5, render=False) for _ in range(2))
    obs_a, obs_b = a.reset(), b.reset()
    np.testing.assert_array_equal(obs_a.state, obs_b.state)
    for role in ROLES:
        np.testing.assert_array_equal(a.object_position(role), b.object_position(role))
    np.testing.assert_array_equal(a.goal_position(), b.goal_position())
    for _ in range(3):
        a.step(np.ones(7, dtype=np.float32))
    np.testing.assert_array_equal(a.reset().state, obs_a.state)  # reset restores the same trial
    np.testing.assert_array_equal(a.object_position("target"), b.object_position("target"))
    other = family.make_env(tasks[0], 6, render=False)
    other.reset()
    assert not np.allclose(other.goal_position(), a.goal_position())
    assert not np.allclose(other.object_position("target"), a.object_position("target"))
    for seed in range(60):
        env = family.make_env(tasks[seed % len(tasks)], 1000 + seed, render=False)
        env.reset()
        target, distractor = (env.object_position(r)[:2] for r in ROLES)
        goal = env.goal_position()[:2]
        specs = env.object_specs
        assert PUSH_DISTANCE[0] - 1e-9 <= np.linalg.norm(goal - target) <= PUSH_DISTANCE[1] + 1e-9
        assert np.linalg.norm(distractor - target) > specs["target"].radius + specs["distractor"].radius
        assert np.linalg.norm(distractor - goal) > family.config.goal_radius + specs["distractor"].radius
        extents = ((target, specs["target"].radius), (distractor, specs["distractor"].radius), (goal, 0.06))
        for xy, r in extents:
            assert np.all(np.abs(xy - TABLE_CENTRE) + r <= TABLE_HALF)  # all on the table


def test_layout_does_not_give_the_target_away(family: PushingFamily) -> None:
    """Where the objects lie must not say which is the target, or a policy succeeds without the demo.

    The first sampler put the distractor farther from the goal than the target in 99.4% of scenes.
    """
    rng = np.random.default_rng(3)
    nearer_goal, nearer_centre, n = 0, 0, 400
    centre = np.array([np.mean(OBJECT_X), np.mean(OBJECT_Y)])
    for k in range(n):
        task = family.tasks("train")[k % 50]
        target, distractor = (family.catalogue.objects[task.objects[r]] for r in ROLES)
        layout = sample_layout(rng, target, distractor, family.config)
        nearer_goal += np.linalg.norm(layout.target - layout.goal) < np.linalg.norm(layout.distractor - layout.goal)
        nearer_centre += np.linalg.norm(layout.target - centre) < np.linalg.norm(layout.distractor - centre)
    # Chance is 1/2; 0.4-0.6 is 4 standard deviations at n = 400.
    assert 0.4 * n < nearer_goal < 0.6 * n
    assert 0.4 * n < nearer_centre < 0.6 * n


def test_robot_interface_dynamics_and_speed(family: PushingFamily) -> None:
    assert family.action_kind == "joint_effort" and family.action_dim == 7
    assert family.control_rate_hz == 20 and family.horizon == family.episode_steps == 100
    assert family.camera_every == 1 and len(family.state_names) == 17
    env = family.make_env(family.tasks("val")[0], 11, render=False)
    obs = env.reset()
    assert obs.state.dtype == np.float32 and obs.state.shape == (17,)
    assert env.joint_names() == ARM_JOINT_NAMES and not env.gripper_is_open()
    np.testing.assert_allclose(obs.state[:7], env.joint_positions(), atol=1e-6)
    np.testing.assert_allclose(env.ee_pose()[:3], obs.state[14:], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(env.ee_pose()[3:]), 1.0)
    tool_axis = env.data.site_xmat[env.tip_site].reshape(3, 3)[:, 0]
    assert tool_axis[2] < -0.95  # the pusher starts pointing down

    # Gravity compensation: with zero torque the arm stays where it is.
    tip = env.tip_position()
    for _ in range(20):
        env.step(ZERO)
    assert np.linalg.norm(env.tip_position() - tip) < 0.01
    # Torque control: a positive shoulder-pan torque turns the shoulder pan joint positively.
    q0 = env.joint_positions()
    for _ in range(3):
        obs = env.step(np.array([1.0, 0, 0, 0, 0, 0, 0], dtype=np.float32))
    assert env.joint_positions()[0] > q0[0] + 0.01 and obs.state[7] > 0.1

    episode = run_episode(family, env, family.make_expert(env, 0), record_images=False)
    assert episode.states.shape == (100, 17) and episode.actions.shape == (100, 7)
    assert episode.joint_positions.shape == (100, 7) and episode.images.shape == (0, 125, 125, 3)
    np.testing.assert_allclose(episode.times[1], 1.0 / family.control_rate_hz)
    np.testing.assert_allclose(episode.joint_positions, episode.states[:, :7], atol=1e-5)
    np.testing.assert_allclose(episode.ee_poses[:, :3], episode.states[:, 14:], atol=1e-5)


def test_demo_target_is_behind_the_demonstrated_object_not_at_the_goal(family: PushingFamily) -> None:
    """The target head's point must single out the pushed object (only the demo tells which one it is).

    The default (where the tip ends) sits next to the shared red goal, which needs no demo; the pushing
    family's ``demo_target`` is the pre-push point a few cm behind the target on the goal line.
    """
    tasks = family.tasks("train")
    for i in range(6):
        env = family.make_env(tasks[i], 40 + i, render=False)
        expert = family.make_expert(env, seed=i, noise=1.0)
        env.reset()
        target0, distractor0 = env.object_position("target")[:2], env.object_position("distractor")[:2]
        goal = env.goal_position()[:2]
        episode = run_episode(family, env, expert, record_images=False)
        point = family.demo_target(episode.ee_poses)
        assert point.shape == (2,) and point.dtype == np.float32
        to_target = float(np.linalg.norm(point - target0))
        assert to_target < 0.13, f"trial {i}: {to_target:.3f} m from the target's start"
        assert to_target < float(np.linalg.norm(point - distractor0))
        # Behind the target as seen from the goal: farther from the goal than the target was.
        assert np.linalg.norm(point - goal) > np.linalg.norm(target0 - goal) + 0.02
    # A path that never comes down to pushing height falls back to the final position.
    high = np.tile([0.5, -0.2, 0.9, 1.0, 0.0, 0.0, 0.0], (5, 1))
    high[-1, :2] = [0.55, -0.1]
    np.testing.assert_allclose(family.demo_target(high), [0.55, -0.1])


@pytest.mark.parametrize(
    ("perturb_std", "action_space"), [(0.0, "joint_effort"), (0.2, "joint_effort"), (0.0, "ee_twist")]
)
def test_a_demo_bags_actions_replayed_from_its_trial_seed_reproduce_it(
    tmp_path: Path, perturb_std: float, action_space: str
) -> None:
    """What a policy learns from is what the robot did: the bag's actions, applied from the same trial
    seed, retrace the recorded states and end in the same success (no hidden noise between the
    recorded command and the applied one, no state lost in the bag round trip). In a perturbed
    (DART) demo the applied torques are the recorded actions, and the expert's labels differ."""
    family = PushingFamily(PushingConfig(action_space=action_space))
    task = family.tasks("train")[3]
    env = family.make_env(task, 77, render=True)
    perturb = GaussianPerturbation(family, perturb_std, 5) if perturb_std else None
    recorded = run_episode(family, env, family.make_expert(env, 5, 1.0), perturb=perturb)
    assert recorded.success
    episode = read_episode(write_episode(tmp_path / "demo", recorded, family.state_names))
    if perturb_std:
        assert episode.labels is not None
        assert 0.15 < float(np.std(episode.actions - episode.labels)) < 0.25
    env = family.make_env(episode.task, episode.trial_seed, render=False)
    obs = env.reset()
    for i, action in enumerate(episode.actions):
        np.testing.assert_allclose(obs.state, episode.states[i], rtol=0, atol=1e-6, err_msg=f"step {i}")
        obs = env.step(action)
    env.end_episode()
    assert env.success()
