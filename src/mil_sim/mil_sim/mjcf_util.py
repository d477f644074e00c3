"""Small helpers every task family's scene uses: camera orientation, colours, an offscreen renderer."""

from __future__ import annotations

import colorsys

import mujoco
import numpy as np


def look_at_xyaxes(eye: np.ndarray, target: np.ndarray) -> str:
    """MJCF ``xyaxes`` of a camera at ``eye`` looking at ``target`` with the world z axis up."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return " ".join(f"{v:.5f}" for v in (*right, *up))


def rgba_str(c: tuple[float, ...]) -> str:
    return " ".join(f"{v:.3f}" for v in c)


def hsv_colour(hue: float, sat: float, val: float) -> tuple[float, float, float, float]:
    """Opaque RGBA (rounded to 3 decimals, as stored in the catalogues) from HSV in [0, 1]."""
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, sat, val)
    return (round(r, 3), round(g, 3), round(b, 3), 1.0)


class LazyRenderer:
    """An offscreen renderer for one camera, created on first use (an env that never renders opens no
    GL context) and released by ``close`` (code holding many envs must not keep their contexts)."""

    def __init__(self, model: mujoco.MjModel, width: int, height: int, camera: str) -> None:
        self.model, self.width, self.height, self.camera = model, width, height, camera
        self._renderer: mujoco.Renderer | None = None

    def render(self, data: mujoco.MjData) -> np.ndarray:
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, height=self.height, width=self.width)
        self._renderer.update_scene(data, camera=self.camera)
        return self._renderer.render().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
