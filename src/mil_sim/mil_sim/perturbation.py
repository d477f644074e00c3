"""DART-style perturbed demonstrations: the expert's chosen action is recorded as the label, a noisy one
is applied.

Behaviour cloning only sees the states the expert visits; closed loop, a policy's small errors take it
to states no demo showed (``drift`` measures this). DART (Laskey et al., "DART: Noise Injection for
Robust Imitation Learning", CoRL 2017) injects noise into the *executed* action while the demonstrator
keeps acting on the state it finds itself in, so the data holds the demonstrator's corrections from
the perturbed states, labelled with what it wanted rather than what was applied.

A perturbation is a callable ``label -> applied action`` with its own seeded generator, so a demo is
reproducible from (trial seed, expert seed, perturbation seed) and the bag's applied commands replay it.
"""

from __future__ import annotations

import numpy as np

from mil_sim.core import TaskFamily


class GaussianPerturbation:
    """Independent zero-mean Gaussian noise of ``std`` (action units) on every step, as DART's, then the
    family's action limits. Only successful demos are kept, so ``std`` is bounded by how much the
    expert can still recover from (``generate_demos`` reports the retried rollouts)."""

    def __init__(self, family: TaskFamily, std: float, seed: int) -> None:
        if not std >= 0.0:
            raise ValueError(f"perturbation std must be >= 0, got {std}")
        self.family = family
        self.std = float(std)
        self.rng = np.random.default_rng([seed, 4242])

    def __call__(self, label: np.ndarray) -> np.ndarray:
        noise = self.rng.normal(0.0, self.std, size=label.shape)
        return self.family.clip_action(np.asarray(label, dtype=np.float64) + noise).astype(np.float32)
