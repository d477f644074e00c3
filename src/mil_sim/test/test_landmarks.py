"""``Env.landmarks``: every family reports its objects where its own scoring finds them."""

from __future__ import annotations

import numpy as np
import pytest

from mil_sim.core import Landmarks
from mil_sim.families import get_family


def _reset(name: str, seed: int):
    family = get_family(name)
    env = family.make_env(family.tasks("train")[0], seed, render=False)
    env.reset()
    return env


@pytest.mark.parametrize("name", ["reaching", "pushing", "placing"])
def test_landmarks_are_where_the_family_scores_and_change_with_the_trial(name: str) -> None:
    env = _reset(name, 3)
    lm = env.landmarks()
    assert lm is not None and "target" in lm.objects and len(lm.objects) >= 2
    if name == "reaching":
        tip = env.fingertip()
        assert env.target_distance() == pytest.approx(np.linalg.norm(tip - lm.objects["target"]), abs=1e-9)
        nearest = min(lm.objects, key=lambda r: np.linalg.norm(tip - lm.objects[r]))
        assert env.chosen_role() == nearest
    elif name == "pushing":
        goal = lm.markers["goal"]
        assert env.target_distance() == pytest.approx(np.linalg.norm(lm.objects["target"] - goal), abs=1e-9)
        assert env.chosen_role() == min(lm.objects, key=lambda r: np.linalg.norm(lm.objects[r] - goal))
        layout = env.layout
        assert np.linalg.norm(lm.objects["distractor"] - layout.distractor) < 0.01  # at rest where laid out
    else:
        held = env.held_position()[:2]
        for role, xy in lm.objects.items():
            assert env.item_distance(role) == pytest.approx(np.linalg.norm(held - xy), abs=1e-9)
        assert set(lm.objects) == set(env.container_specs)
    env.close()
    other = _reset(name, 4)
    assert not np.allclose(other.landmarks().objects["target"], lm.objects["target"])
    other.close()


def test_target_centroid_distance() -> None:
    lm = Landmarks(objects={"target": np.array([0.0, 0.0]), "a": np.array([0.3, 0.0]), "b": np.array([0.0, 0.3])})
    assert lm.target_centroid_distance() == pytest.approx(np.hypot(0.1, 0.1))
    two = Landmarks(objects={"target": np.array([1.0, 2.0]), "distractor": np.array([1.0, 2.4])})
    assert two.target_centroid_distance() == pytest.approx(0.2)
