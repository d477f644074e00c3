"""Procedural object catalogue of the pushing family: rigid objects built from MuJoCo primitives.

The seed paper pushed 116 meshes (105 for meta-training, 11 held out) with varied textures, masses and
frictions. Here every object is generated from a fixed seed: a shape kind (box, cylinder, capsule on a
sled, L / T / cross / hexagonal prisms, dumbbells, towers, twin cylinders), part sizes, colours or a
builtin texture, sliding friction and mass. The ids are split once, by a fixed seed, into train / val /
test, so a held-out object never appears in a training task and every machine agrees on the split.

Shapes are kept pushable on purpose: nothing rolls (lying capsules sit on a flat sled), nothing is
tall and narrow enough to tip over when the pusher touches it ~2 cm above the table, and every part
reaches down to the table so the pusher never slides under an overhang.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cache

import numpy as np

from mil_sim.mjcf_util import hsv_colour

SHAPE_KINDS = (
    "box",
    "cylinder",
    "capsule_sled",
    "l_shape",
    "t_shape",
    "cross",
    "hexagon",
    "dumbbell",
    "tower",
    "twin",
)
TEXTURES = ("none", "checker", "gradient", "stripes")
CATALOGUE_SEED = 20170916  # fixed forever: changing it changes every split and dataset
# Ranges that keep every object pushable by the scripted expert within the 5 s episode (see module doc).
FRICTION_RANGE = (0.35, 0.9)  # sliding friction coefficient (the table's is lower, so this one applies)
MASS_RANGE = (0.08, 0.45)  # kg


@dataclass(frozen=True)
class Part:
    """One primitive geom of an object, in the object's frame (origin on the table under the centre of mass).

    ``size`` follows MuJoCo's geom size convention for ``shape``; ``yaw`` rotates the part about z and
    ``roll_y`` (only for lying capsules) turns its axis horizontal.
    """

    shape: str  # box | cylinder | capsule
    size: tuple[float, ...]
    pos: tuple[float, float, float]
    yaw: float = 0.0
    lying: bool = False  # capsule axis along the part's x axis instead of z
    secondary: bool = False  # drawn in the object's second colour

    def volume(self) -> float:
        if self.shape == "box":
            return 8.0 * self.size[0] * self.size[1] * self.size[2]
        if self.shape == "cylinder":
            return math.pi * self.size[0] ** 2 * 2.0 * self.size[1]
        r, h = self.size
        return math.pi * r * r * 2.0 * h + 4.0 / 3.0 * math.pi * r**3

    def footprint_points(self) -> np.ndarray:
        """Points whose convex hull (grown by ``footprint_margin``) covers the part seen from above."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        if self.shape == "box":
            local = np.array([[sx * self.size[0], sy * self.size[1]] for sx in (-1, 1) for sy in (-1, 1)])
        elif self.shape == "capsule" and self.lying:
            local = np.array([[-self.size[1], 0.0], [self.size[1], 0.0]])
        else:
            local = np.zeros((1, 2))
        rot = np.array([[c, -s], [s, c]])
        return local @ rot.T + np.array(self.pos[:2])

    @property
    def footprint_margin(self) -> float:
        return 0.0 if self.shape == "box" else self.size[0]

    @property
    def top(self) -> float:
        """Height of the part's top above the table."""
        if self.shape == "box":
            return self.pos[2] + self.size[2]
        if self.shape == "cylinder":
            return self.pos[2] + self.size[1]
        return self.pos[2] + (self.size[0] if self.lying else self.size[0] + self.size[1])


@dataclass(frozen=True)
class PushObjectSpec:
    """A pushable object: its parts, look and physical properties."""

    object_id: str
    kind: str
    parts: tuple[Part, ...]
    rgba: tuple[float, float, float, float]
    rgba2: tuple[float, float, float, float]
    texture: str
    friction: float
    mass: float

    @property
    def volume(self) -> float:
        return sum(p.volume() for p in self.parts)

    @property
    def density(self) -> float:
        """Uniform density that gives the object its catalogue mass (MuJoCo derives inertia from it)."""
        return self.mass / self.volume

    @property
    def radius(self) -> float:
        """Radius of the smallest origin-centred circle covering the footprint (layout and clearances)."""
        return max(float(np.max(np.linalg.norm(p.footprint_points(), axis=1))) + p.footprint_margin for p in self.parts)

    @property
    def height(self) -> float:
        return max(p.top for p in self.parts)


def _colour(rng: np.random.Generator) -> tuple[float, float, float, float]:
    """A saturated colour whose hue keeps away from the goal's red, so the goal stays unambiguous."""
    return hsv_colour(rng.uniform(0.07, 0.93), rng.uniform(0.4, 1.0), rng.uniform(0.35, 1.0))


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return round(float(rng.uniform(lo, hi)), 4)


def _parts(kind: str, rng: np.random.Generator) -> list[Part]:
    """Parts of one shape kind, each resting on the table (z = 0 is the table top)."""
    if kind == "box":
        hz = _u(rng, 0.015, 0.035)
        return [Part("box", (_u(rng, 0.02, 0.04), _u(rng, 0.02, 0.04), hz), (0.0, 0.0, hz))]
    if kind == "cylinder":
        hz = _u(rng, 0.015, 0.035)
        return [Part("cylinder", (_u(rng, 0.022, 0.04), hz), (0.0, 0.0, hz))]
    if kind == "capsule_sled":
        r, h = _u(rng, 0.014, 0.022), _u(rng, 0.012, 0.03)
        sled = 0.005
        return [
            Part("box", (r + h, _u(rng, 0.75, 1.0) * r, sled), (0.0, 0.0, sled), secondary=True),
            Part("capsule", (r, h), (0.0, 0.0, 2 * sled + r), lying=True),
        ]
    if kind in ("l_shape", "t_shape", "cross"):
        hz = _u(rng, 0.015, 0.03)
        a, w = _u(rng, 0.035, 0.05), _u(rng, 0.01, 0.016)
        b = _u(rng, 0.02, 0.035)
        bar = Part("box", (a, w, hz), (0.0, 0.0, hz))
        if kind == "l_shape":
            leg = Part("box", (w, b, hz), (a - w, b - w, hz), secondary=True)
        elif kind == "t_shape":
            leg = Part("box", (w, b, hz), (0.0, b - w, hz), secondary=True)
        else:
            leg = Part("box", (w, a, hz), (0.0, 0.0, hz), secondary=True)
        return [bar, leg]
    if kind == "hexagon":
        hz, half = _u(rng, 0.015, 0.03), _u(rng, 0.018, 0.032)
        long = round(half / math.sqrt(3.0), 4)
        return [Part("box", (long, half, hz), (0.0, 0.0, hz), yaw=k * math.pi / 3, secondary=k == 1) for k in range(3)]
    if kind == "dumbbell":
        r, hz, gap = _u(rng, 0.016, 0.024), _u(rng, 0.015, 0.03), _u(rng, 0.02, 0.035)
        bar_hz = round(0.6 * hz, 4)
        return [
            Part("cylinder", (r, hz), (-(gap + r), 0.0, hz)),
            Part("cylinder", (r, hz), (gap + r, 0.0, hz)),
            Part("box", (gap + r, 0.6 * r, bar_hz), (0.0, 0.0, bar_hz), secondary=True),
        ]
    if kind == "tower":
        base_hz, base = _u(rng, 0.012, 0.02), _u(rng, 0.028, 0.04)
        top_r, top_hz = _u(rng, 0.012, 0.022), _u(rng, 0.01, 0.02)
        return [
            Part("box", (base, _u(rng, 0.7, 1.0) * base, base_hz), (0.0, 0.0, base_hz)),
            Part("cylinder", (top_r, top_hz), (0.0, 0.0, 2 * base_hz + top_hz), secondary=True),
        ]
    # twin: two touching cylinders of different radii (a peanut)
    r1, r2, hz = _u(rng, 0.018, 0.03), _u(rng, 0.014, 0.024), _u(rng, 0.015, 0.03)
    return [
        Part("cylinder", (r1, hz), (-r1 * 0.8, 0.0, hz)),
        Part("cylinder", (r2, hz), (r2 * 0.8, 0.0, hz), secondary=True),
    ]


def _centred(parts: list[Part]) -> tuple[Part, ...]:
    """Shift parts so the object's centre of mass (uniform density) lies above the frame origin."""
    vols = np.array([p.volume() for p in parts])
    com = sum(v * np.array(p.pos[:2]) for v, p in zip(vols, parts, strict=True)) / vols.sum()
    return tuple(
        replace(p, pos=(round(float(p.pos[0] - com[0]), 5), round(float(p.pos[1] - com[1]), 5), p.pos[2]))
        for p in parts
    )


def _object(rng: np.random.Generator, index: int) -> PushObjectSpec:
    kind = SHAPE_KINDS[index % len(SHAPE_KINDS)]
    return PushObjectSpec(
        object_id=f"push_obj_{index:03d}",
        kind=kind,
        parts=_centred(_parts(kind, rng)),
        rgba=_colour(rng),
        rgba2=_colour(rng),
        texture=TEXTURES[int(rng.integers(len(TEXTURES)))],
        friction=_u(rng, *FRICTION_RANGE),
        mass=_u(rng, *MASS_RANGE),
    )


@dataclass(frozen=True)
class PushCatalogue:
    objects: dict[str, PushObjectSpec]
    split: dict[str, tuple[str, ...]]

    def split_of(self, object_id: str) -> str | None:
        for name, ids in self.split.items():
            if object_id in ids:
                return name
        return None


@cache
def push_catalogue(n_objects: int = 128, n_val: int = 12, n_test: int = 11) -> PushCatalogue:
    """The fixed catalogue and its split (defaults: the paper's 105 training and 11 test objects + 12 val)."""
    rng = np.random.default_rng(CATALOGUE_SEED)
    objects = {o.object_id: o for o in (_object(rng, i) for i in range(n_objects))}
    order = [list(objects)[i] for i in np.random.default_rng([CATALOGUE_SEED, 1]).permutation(n_objects)]
    split = {
        "test": tuple(sorted(order[:n_test])),
        "val": tuple(sorted(order[n_test : n_test + n_val])),
        "train": tuple(sorted(order[n_test + n_val :])),
    }
    return PushCatalogue(objects=objects, split=split)
