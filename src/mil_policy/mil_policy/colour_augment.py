"""Task-consistent colour augmentation: new meta-training tasks from recoloured copies of the old ones.

Why: with a few hundred tasks, a meta-learner can memorise each training task from its scene (which held
item with which containers) and output that task's answer without reading the demonstration; training
loss then falls while validation loss rises and the own-demo gap closes (runs/p40b in docs/results.md).
Recolouring a task, the same way in its adaptation and its evaluation demos, keeps what the demo says
(the target is the object that looks like *this*) while changing what the objects look like, so a
memorised answer stops being right and reading the demo is the only way left.

The transform is a rotation of RGB space about the grey axis (a hue rotation; greys such as the arm, the
floor and the shadows stay put), by a uniform random angle, mirrored with probability 1/2 (swapping two
channels reverses the hue circle). Being linear it is one 3x3 matrix per task, applied on the loaded
batch. Test time sees the raw camera.
"""

from __future__ import annotations

import numpy as np
import torch

GREY_AXIS = np.full(3, 1.0 / np.sqrt(3.0))


def hue_rotation(angle: float) -> np.ndarray:
    """The 3x3 rotation of RGB by ``angle`` (radians) about the grey axis (Rodrigues' formula)."""
    k = GREY_AXIS
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.cos(angle) * np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * np.outer(k, k)


def random_colour_transforms(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random hue rotations, each mirrored (R and G swapped) with probability 1/2: (n, 3, 3)."""
    angles = rng.uniform(0.0, 2.0 * np.pi, size=n)
    mirror = rng.random(n) < 0.5
    swap = np.eye(3)[[1, 0, 2]]
    return np.stack([hue_rotation(a) @ (swap if m else np.eye(3)) for a, m in zip(angles, mirror, strict=True)])


def apply_colour_transforms(images: torch.Tensor, transforms: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Recolour ``images`` (M, ..., 3, H, W) in [0, 1] with one (3, 3) matrix per leading index, clipped."""
    mats = torch.as_tensor(transforms, dtype=images.dtype, device=images.device)
    if images.shape[-3] != 3 or mats.shape != (images.shape[0], 3, 3):
        raise ValueError(f"need (M, ..., 3, H, W) images and (M, 3, 3) transforms, got {images.shape}, {mats.shape}")
    flat = images.reshape(images.shape[0], -1, 3, *images.shape[-2:])
    out = torch.einsum("mij,mnjhw->mnihw", mats, flat).clamp_(0.0, 1.0)
    return out.reshape(images.shape)
