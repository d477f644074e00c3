"""One recorded demonstration (an Episode at the control rate) -> the fixed-horizon arrays MIL learns from.

Appendix A.3: variable-length demos are subsampled to a fixed horizon T, camera images are
downsampled and cropped (the family's ``preprocess``), and the target position is read off the
end-effector path (the family's ``demo_target``: by default its final position). The same function
serves meta-training, evaluation and the policy node, so a demo is turned into network input exactly one
way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mil_sim.core import Episode, TaskFamily


class DemoError(ValueError):
    """A demo that cannot be used (too short, NaN, wrong image size, ...): the message says why."""


@dataclass
class DemoArrays:
    images: np.ndarray  # (T, H, W, 3) uint8 policy images
    states: np.ndarray  # (T, S) float32
    actions: np.ndarray  # (T, A) float32
    target: np.ndarray  # (2,) float32: the family's demo_target, e.g. final end-effector x, y
    steps: np.ndarray  # (T,) int: control-step index of each sample in the episode


def subsample_indices(n_steps: int, horizon: int) -> np.ndarray:
    """T control-step indices spread evenly over the episode, first and last included."""
    if horizon <= 0:
        raise DemoError(f"horizon must be positive, got {horizon}")
    if n_steps < horizon:
        raise DemoError(f"demo has {n_steps} steps, fewer than the horizon {horizon}")
    return np.round(np.linspace(0, n_steps - 1, horizon)).astype(np.int64)


def latest_image_index(image_times: np.ndarray, t: float) -> int:
    """The newest camera frame at or before time t (what a policy running live would have seen)."""
    i = int(np.searchsorted(image_times, t + 1e-9, side="right")) - 1
    return max(i, 0)


def demo_arrays(episode: Episode, horizon: int, family: TaskFamily) -> DemoArrays:
    """Subsample ``episode`` to ``horizon`` steps, images through ``family.preprocess``."""
    if len(episode.images) == 0:
        raise DemoError("demo has no camera images")
    for name, arr in (("states", episode.states), ("actions", episode.targets), ("ee_poses", episode.ee_poses)):
        if not np.all(np.isfinite(arr)):
            raise DemoError(f"demo {name} contain NaN or infinite values")
    idx = subsample_indices(len(episode), horizon)
    images = []
    for i in idx:
        try:
            img = family.preprocess(episode.images[latest_image_index(episode.image_times, float(episode.times[i]))])
        except ValueError as exc:
            raise DemoError(f"demo image does not fit this policy: {exc}") from exc
        images.append(img)
    images_arr = np.stack(images).astype(np.uint8)
    w, h = family.image_size
    if images_arr.shape[1:] != (h, w, 3):
        raise DemoError(f"preprocessed images are {images_arr.shape[1:]}, expected {(h, w, 3)}")
    return DemoArrays(
        images=images_arr,
        states=episode.states[idx].astype(np.float32),
        actions=episode.targets[idx].astype(np.float32),  # the labels of a perturbed (DART) demo
        target=family.demo_target(episode.ee_poses),
        steps=idx,
    )
