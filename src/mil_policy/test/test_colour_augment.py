"""Task-consistent colour augmentation: the transforms, and how the sampler applies them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mil_policy.colour_augment import apply_colour_transforms, hue_rotation, random_colour_transforms


def test_hue_rotation_keeps_greys_and_is_a_rotation() -> None:
    for angle in (0.3, 2.0, np.pi):
        r = hue_rotation(angle)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(r @ np.full(3, 0.4), np.full(3, 0.4), atol=1e-12)
    np.testing.assert_allclose(hue_rotation(2 * np.pi / 3) @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(hue_rotation(0.0), np.eye(3), atol=1e-12)


def test_random_transforms_differ_mirror_about_half_the_time_and_are_seeded() -> None:
    mats = random_colour_transforms(np.random.default_rng(0), 400)
    assert mats.shape == (400, 3, 3)
    np.testing.assert_allclose(mats @ np.ones(3), np.ones((400, 3)), atol=1e-12)  # greys stay grey
    mirrored = np.linalg.det(mats) < 0
    assert 150 < mirrored.sum() < 250
    red = mats @ np.array([1.0, 0.0, 0.0])
    assert np.ptp(red, axis=0).min() > 0.5  # red goes to many different colours
    np.testing.assert_array_equal(mats, random_colour_transforms(np.random.default_rng(0), 400))


def test_apply_is_one_matrix_per_task_and_clips() -> None:
    images = torch.rand(2, 3, 4, 3, 5, 6)
    mats = random_colour_transforms(np.random.default_rng(1), 2)
    out = apply_colour_transforms(images, mats)
    assert out.shape == images.shape and out.min() >= 0.0 and out.max() <= 1.0
    pixel = images[1, 2, 3, :, 4, 5].double()
    expected = (torch.from_numpy(mats[1]) @ pixel).clamp(0, 1).float()
    torch.testing.assert_close(out[1, 2, 3, :, 4, 5], expected)
    with pytest.raises(ValueError, match="transforms"):
        apply_colour_transforms(images, mats[:1])
