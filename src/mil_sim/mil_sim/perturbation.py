"""Perturbed demonstrations: the expert's chosen action is recorded as the label, another one is applied.

Behaviour cloning only sees the states the expert visits; closed loop, a policy's small errors take it
to states no demo showed (``drift`` measures this). DART (Laskey et al., "DART: Noise Injection for
Robust Imitation Learning", CoRL 2017) injects noise into the *executed* action while the demonstrator
keeps acting on the state it finds itself in, so the data holds the demonstrator's corrections from
the perturbed states, labelled with what it wanted rather than what was applied.

DAgger (Ross et al., "A Reduction of Imitation Learning and Structured Prediction to No-Regret Online
Learning", AISTATS 2011) goes further: the *learned policy* drives (:class:`PolicyTakeover`), so the
states are the ones its own mistakes reach, and the expert, acting from the true scene at every step,
labels them. Such a rollout supervises but shows no demonstration: the episode is marked
``driven_by: policy`` (``Episode.is_demonstration`` is false) and training never adapts on it.

A perturbation is a callable ``(observation, label) -> applied action`` with its own seeded generator,
so a rollout is reproducible from its seeds and the bag's applied commands replay it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mil_sim.core import Env, Observation, TaskFamily

Act = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (camera image, state) -> action of a learned policy


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

    def __call__(self, obs: Observation, label: np.ndarray) -> np.ndarray:
        noise = self.rng.normal(0.0, self.std, size=label.shape)
        return self.family.clip_action(np.asarray(label, dtype=np.float64) + noise).astype(np.float32)


class PolicyTakeover:
    """DAgger's mixture policy: at each of the learned policy's acting steps a coin gives control to the
    expert with probability ``beta``, else to the policy, whose action is held until its next acting
    step (as ``evaluate`` runs it). The expert is asked at every control step either way, and its action
    is the label (``run_episode(policy=expert, perturb=takeover)``). ``beta = 0`` is pure on-policy
    data; a small ``beta`` keeps early, poor policies from spending whole episodes far off any useful
    state. One instance per episode: it counts the steps and holds the policy's last action.
    ``proposed`` keeps what the policy asked for at each acting step, so ``beta = 1`` measures the
    policy on the expert's own path (``drift``).
    """

    def __init__(
        self, env: Env, act: Act, acting_steps: Sequence[int], beta: float, seed: int, reset: Callable[[], None]
    ) -> None:
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta (the expert's share of control) must be in [0, 1], got {beta}")
        self.env = env
        self.act = act
        self.acting = frozenset(int(i) for i in acting_steps)
        self.beta = float(beta)
        self.rng = np.random.default_rng([seed, 4343])
        self.step = 0
        self.held: np.ndarray | None = None
        self.expert_drives = True
        self.policy_steps = 0  # control steps the policy drove, for the episode's metadata
        self.proposed: dict[int, np.ndarray] = {}  # acting step -> the policy's action, whoever drove
        reset()  # the policy's per-episode state (e.g. an LSTM's), as at the start of an evaluation trial

    def __call__(self, obs: Observation, label: np.ndarray) -> np.ndarray:
        i, self.step = self.step, self.step + 1
        if i in self.acting or self.held is None:
            self.expert_drives = bool(self.rng.random() < self.beta)
            # Asked even when the expert drives, so a policy with memory (the LSTM) sees every frame.
            self.held = np.asarray(self.act(self.env.render_camera(), obs.state), dtype=np.float32)
            if i in self.acting:
                self.proposed[i] = self.held
        if self.expert_drives:
            return np.asarray(label, dtype=np.float32)
        self.policy_steps += 1
        return self.held
