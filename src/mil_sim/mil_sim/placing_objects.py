"""Procedural object catalogue of the placing family: held items and containers (cups, bowls, plates).

The seed paper placed ~100 training and 29 held-out real objects. Here every object is generated from a
fixed seed (shape, size, colours, texture), and the ids are split once, by a fixed seed, into train /
val / test, so a held-out object never appears in a training task and every machine agrees on the split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from mil_sim.mjcf_util import hsv_colour

CONTAINER_KINDS = ("cup", "bowl", "plate")
HELD_SHAPES = ("sphere", "box", "cylinder", "capsule", "ellipsoid")
TEXTURES = ("none", "checker", "gradient", "stripes")
CATALOGUE_SEED = 20170915  # fixed forever: changing it changes every split and dataset


@dataclass(frozen=True)
class ContainerSpec:
    """A container: a flat base plus a ring of wall segments (walls are ~1 cm high for a plate)."""

    object_id: str
    kind: str
    radius: float  # outer radius (m)
    height: float  # rim height above the table (m)
    wall: float  # wall thickness (m)
    segments: int  # wall segments around the ring
    rgba: tuple[float, float, float, float]
    rgba2: tuple[float, float, float, float]  # second texture colour
    texture: str

    @property
    def inner_radius(self) -> float:
        return self.radius - self.wall


@dataclass(frozen=True)
class HeldSpec:
    """An item the gripper holds; ``size`` follows MuJoCo's geom size convention for ``shape``."""

    object_id: str
    shape: str
    size: tuple[float, ...]
    rgba: tuple[float, float, float, float]

    @property
    def half_extent(self) -> float:
        """Half of the item's vertical extent when held (for release heights and success bounds)."""
        if self.shape in ("sphere", "box", "ellipsoid"):
            return self.size[-1] if self.shape != "sphere" else self.size[0]
        if self.shape == "cylinder":
            return self.size[1]
        return self.size[0] + self.size[1]  # capsule: radius + half length


def _colour(rng: np.random.Generator) -> tuple[float, float, float, float]:
    return hsv_colour(rng.uniform(0, 1), rng.uniform(0.45, 1.0), rng.uniform(0.35, 1.0))


def _container(rng: np.random.Generator, index: int) -> ContainerSpec:
    kind = CONTAINER_KINDS[index % 3]
    if kind == "cup":
        radius, height, segments = rng.uniform(0.05, 0.06), rng.uniform(0.07, 0.10), int(rng.integers(10, 16))
    elif kind == "bowl":
        radius, height, segments = rng.uniform(0.065, 0.085), rng.uniform(0.035, 0.055), int(rng.integers(12, 20))
    else:
        radius, height, segments = rng.uniform(0.075, 0.095), rng.uniform(0.012, 0.018), int(rng.integers(16, 24))
    return ContainerSpec(
        object_id=f"container_{index:03d}",
        kind=kind,
        radius=round(float(radius), 4),
        height=round(float(height), 4),
        wall=round(float(rng.uniform(0.005, 0.009)), 4),
        segments=segments,
        rgba=_colour(rng),
        rgba2=_colour(rng),
        texture=TEXTURES[int(rng.integers(len(TEXTURES)))],
    )


def _held(rng: np.random.Generator, index: int) -> HeldSpec:
    shape = HELD_SHAPES[index % len(HELD_SHAPES)]
    if shape == "sphere":
        size: tuple[float, ...] = (rng.uniform(0.018, 0.026),)
    elif shape == "box":
        size = tuple(rng.uniform(0.014, 0.024, size=3))
    elif shape == "cylinder":
        size = (rng.uniform(0.015, 0.022), rng.uniform(0.018, 0.03))
    elif shape == "capsule":
        size = (rng.uniform(0.012, 0.017), rng.uniform(0.008, 0.015))
    else:
        size = tuple(rng.uniform(0.014, 0.026, size=3))
    return HeldSpec(
        object_id=f"held_{index:03d}",
        shape=shape,
        size=tuple(round(float(s), 4) for s in size),
        rgba=_colour(rng),
    )


@dataclass(frozen=True)
class Catalogue:
    containers: dict[str, ContainerSpec]
    held: dict[str, HeldSpec]
    container_split: dict[str, tuple[str, ...]]
    held_split: dict[str, tuple[str, ...]]


def _split(ids: list[str], n_test: int, n_val: int, rng: np.random.Generator) -> dict[str, tuple[str, ...]]:
    order = [ids[i] for i in rng.permutation(len(ids))]
    return {
        "test": tuple(sorted(order[:n_test])),
        "val": tuple(sorted(order[n_test : n_test + n_val])),
        "train": tuple(sorted(order[n_test + n_val :])),
    }


@cache
def catalogue(n_containers: int = 130, n_held: int = 40) -> Catalogue:
    """The fixed catalogue and its split: 29 held-out test containers as in the paper's Table 2."""
    rng = np.random.default_rng(CATALOGUE_SEED)
    containers = {c.object_id: c for c in (_container(rng, i) for i in range(n_containers))}
    held = {h.object_id: h for h in (_held(rng, i) for i in range(n_held))}
    n_test_c = min(29, max(3, math.ceil(n_containers * 0.22)))
    return Catalogue(
        containers=containers,
        held=held,
        container_split=_split(list(containers), n_test_c, max(3, n_containers // 12), rng),
        held_split=_split(list(held), max(1, n_held // 4), max(1, n_held // 10), rng),
    )
