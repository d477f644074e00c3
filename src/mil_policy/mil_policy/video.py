"""Rollout videos: the demo the policy was shown beside what the policy then did, camera view.

Side by side because a one-shot failure is only interpretable next to its demo: the scene layouts
differ on purpose, and the question is whether the policy went for the object the demo went for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

SEPARATOR_PX = 4


def side_by_side(frames: Sequence[np.ndarray], demo: Sequence[np.ndarray] | None) -> list[np.ndarray]:
    """[demo | rollout] frames; the shorter stream holds its last frame. Without a demo: the rollout."""
    if not frames:
        raise ValueError("no rollout frames to write")
    if not demo:
        return [np.asarray(f, np.uint8) for f in frames]
    n = max(len(frames), len(demo))
    out = []
    for i in range(n):
        left = np.asarray(demo[min(i, len(demo) - 1)], np.uint8)
        right = np.asarray(frames[min(i, len(frames) - 1)], np.uint8)
        h = max(left.shape[0], right.shape[0])
        left, right = _pad_height(left, h), _pad_height(right, h)
        gap = np.full((h, SEPARATOR_PX, 3), 255, np.uint8)
        out.append(np.concatenate([left, gap, right], axis=1))
    return out


def _pad_height(img: np.ndarray, h: int) -> np.ndarray:
    if img.shape[0] == h:
        return img
    return np.concatenate([img, np.zeros((h - img.shape[0], *img.shape[1:]), np.uint8)], axis=0)


def write_rollout_video(
    path: Path, frames: Sequence[np.ndarray], demo: Sequence[np.ndarray] | None, fps: float
) -> Path:
    """GIF (pillow) or MP4 (imageio-ffmpeg, H.264) by the suffix of ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    video = side_by_side(frames, demo)
    if path.suffix == ".gif":
        imageio.mimsave(path, video, duration=1000.0 / fps, loop=0)
    elif path.suffix == ".mp4":
        video = [_even(f) for f in video]  # yuv420p needs even width and height
        imageio.mimsave(path, video, fps=fps, macro_block_size=1)
    else:
        raise ValueError(f"unsupported video format {path.suffix!r}; use .gif or .mp4")
    return path


def _even(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return img[: h - h % 2, : w - w % 2]
