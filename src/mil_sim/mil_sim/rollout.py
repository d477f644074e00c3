"""Run a policy (scripted expert, random, or learned) in an env and record the raw Episode."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mil_sim.core import Env, Episode, Observation, TaskFamily

Policy = Callable[[Observation], np.ndarray]
# (observation, chosen action) -> applied action: DART noise or a DAgger policy takeover (mil_sim.perturbation)
Perturb = Callable[[Observation, np.ndarray], np.ndarray]


def run_episode(
    family: TaskFamily,
    env: Env,
    policy: Policy,
    *,
    record_images: bool = True,
    steps: int | None = None,
    perturb: Perturb | None = None,
) -> Episode:
    """Reset ``env``, run ``policy`` for the family's episode length, end the episode, score it.

    Camera frames are rendered every ``family.camera_every`` control steps (only when
    ``record_images``), which is what a teleop recording at a lower camera rate looks like. With
    ``perturb``, ``policy``'s action is recorded as the label and ``perturb``'s is applied.
    """
    n = family.episode_steps if steps is None else steps
    obs = env.reset()
    dt = 1.0 / family.control_rate_hz
    times, states, poses, qpos, qvel, grip, actions, labels = [], [], [], [], [], [], [], []
    image_times, images = [], []
    for i in range(n):
        if record_images and i % family.camera_every == 0:
            image_times.append(i * dt)
            images.append(env.render_camera())
        action = np.asarray(policy(obs), dtype=np.float32)
        if action.shape != (family.action_dim,):
            raise ValueError(f"policy returned action of shape {action.shape}, expected ({family.action_dim},)")
        times.append(i * dt)
        states.append(obs.state)
        poses.append(env.ee_pose())
        qpos.append(env.joint_positions())
        qvel.append(env.joint_velocities())
        grip.append(env.gripper_is_open())
        labels.append(action)
        if perturb is not None:
            action = np.asarray(perturb(obs, action), dtype=np.float32)
            if not family.is_valid_action(action):
                raise ValueError(f"step {i}: the perturbation applied action {action!r}")
        actions.append(action)
        obs = env.step(action)
    env.end_episode()
    cam_w, cam_h = family.camera_size
    return Episode(
        task=env.task,
        trial_seed=env.trial_seed,
        control_rate_hz=family.control_rate_hz,
        action_kind=family.action_kind,
        times=np.asarray(times, dtype=np.float64),
        states=np.asarray(states, dtype=np.float32),
        ee_poses=np.asarray(poses, dtype=np.float64),
        joint_names=env.joint_names(),
        joint_positions=np.asarray(qpos, dtype=np.float64),
        joint_velocities=np.asarray(qvel, dtype=np.float64),
        gripper_open=np.asarray(grip, dtype=bool),
        actions=np.asarray(actions, dtype=np.float32),
        image_times=np.asarray(image_times, dtype=np.float64),
        images=np.asarray(images, dtype=np.uint8).reshape(-1, cam_h, cam_w, 3),
        success=env.success(),
        labels=None if perturb is None else np.asarray(labels, dtype=np.float32),
    )
