"""Closed-loop evaluation end to end on the reaching family (short episodes), its errors and statistics."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from mil_policy import evaluate as evaluate_module
from mil_policy.checkpoint import save_checkpoint
from mil_policy.config import MilConfig
from mil_policy.demo_arrays import subsample_indices
from mil_policy.eval_report import TrialResult, format_table, summarize, wilson_interval
from mil_policy.evaluate import (
    EvalSettings,
    EvaluationError,
    Variant,
    evaluate,
    main,
    make_variants,
    rollout,
    strip_demo,
    trial_seeds,
)
from mil_policy.maml import DemoBatch
from mil_policy.methods import ConditionedPolicy, build_method
from mil_policy.video import write_rollout_video
from mil_sim.families import get_family

STEPS = 20  # reaching episodes of 1 s keep a rollout at ~0.1 s; the expert still reaches in time
FAMILY_CONFIG = {"episode_steps": STEPS}


def _config(method: str = "mil", network: dict[str, Any] | None = None, horizon: int = STEPS, **maml: Any) -> MilConfig:
    net = {
        "image_width": 80,
        "image_height": 64,
        "state_dim": 4,
        "action_dim": 2,
        "conv": [{"filters": 4, "kernel": 3, "stride": 4}],
        "fc": [16],
        "bias_transform_dim": 4,
        "lstm_hidden": 8,
        **(network or {}),
    }
    return MilConfig.from_dict(
        {
            "method": method,
            "network": net,
            "maml": {"inner_steps": 1, "inner_lr": 0.01, "loss": "mse", **maml},
            "data": {"family": "reaching", "family_config": FAMILY_CONFIG, "horizon": horizon},
        }
    )


def _checkpoint(path: Path, config: MilConfig) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(path, build_method(config).module.state_dict(), config)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpt")
    return {
        "mil": _checkpoint(root / "mil_tiny", _config()),
        "video": _checkpoint(
            root / "mil_video",
            _config(network={"two_head": True}, demo_inputs="video_only", inner_loss="learned_no_actions"),
        ),
        "lstm": _checkpoint(root / "lstm_tiny", _config("lstm")),
        "lstm_video": _checkpoint(root / "lstm_video", _config("lstm", demo_inputs="video_only")),
        "contextual": _checkpoint(root / "contextual_tiny", _config("contextual")),
    }


def test_wilson_interval() -> None:
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(1, 1) == pytest.approx((0.2065, 1.0), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for n in range(1, 60):  # contains the rate exactly, even at 0/n and n/n (plot error bars need it)
        for k in range(n + 1):
            lo, hi = wilson_interval(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0
    lo, hi = wilson_interval(90, 100)
    assert lo < 0.9 < hi and hi - 0.9 < 0.9 - lo  # skewed toward the middle near 1
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_summary_table_groups_conditions() -> None:
    def trial(label: str, shots: int, ok: bool) -> TrialResult:
        return TrialResult(label, "mil", shots, "full", "t", 0, 0, 1, [2], ok)

    rows = summarize([trial("a", 1, True), trial("a", 1, False), trial("a", 5, True), trial("b", 1, False)])
    assert [(r.label, r.shots, r.successes, r.trials) for r in rows] == [("a", 1, 1, 2), ("a", 5, 1, 1), ("b", 1, 0, 1)]
    table = format_table(rows)
    assert "1/2" in table and "50.0%" in table and "95% CI" in table
    assert "ended at target" not in table and all(r.chose_target is None for r in rows)


def test_summary_counts_trials_that_ended_at_the_target() -> None:
    """Choosing the right object is counted apart from success (a near miss of the target still chose it)."""

    def trial(ok: bool, chosen: str | None) -> TrialResult:
        return TrialResult("a", "mil", 1, "full", "t", 0, 0, 1, [2], ok, chosen=chosen)

    (row,) = summarize([trial(True, "target"), trial(False, "target"), trial(False, "distractor_0")])
    assert (row.successes, row.chose_target, row.trials) == (1, 2, 3)
    assert "ended at target" in format_table([row]) and "2/3" in format_table([row])
    (partial,) = summarize([trial(True, "target"), trial(False, None)])  # unknown for one trial: no count
    assert partial.chose_target is None


def test_summary_counts_the_object_each_trial_moved() -> None:
    """Which object a trial moved is its choice; the counts split target / other / none."""

    def trial(moved: str | None) -> TrialResult:
        return TrialResult("a", "mil", 1, "full", "t", 0, 0, 1, [2], False, moved=moved)

    (row,) = summarize([trial("target"), trial("distractor"), trial("target"), trial("none")])
    assert (row.moved_target, row.moved_other, row.trials) == (2, 1, 4)
    table = format_table([row])
    assert "moved target / other / none" in table and "2 / 1 / 1" in table
    (partial,) = summarize([trial("target"), trial(None)])  # unknown for one trial: no counts
    assert partial.moved_target is None and partial.moved_other is None
    assert "moved target" not in format_table([partial])


def test_summary_reports_the_median_distance_to_the_target() -> None:
    def trial(distance: float | None) -> TrialResult:
        return TrialResult("a", "mil", 1, "full", "t", 0, 0, 1, [2], False, target_distance=distance)

    (row,) = summarize([trial(0.02), trial(0.30), trial(0.05)])
    assert row.median_target_distance == pytest.approx(0.05)
    assert "median to target" in format_table([row]) and "5.0 cm" in format_table([row])
    (partial,) = summarize([trial(0.02), trial(None)])
    assert partial.median_target_distance is None and "median to target" not in format_table([partial])


class _Counting(ConditionedPolicy):
    def __init__(self) -> None:
        self.calls: list[float] = []

    def reset(self) -> None:
        self.calls = []

    def act(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        assert image.shape == (64, 80, 3) and image.dtype == np.uint8 and state.shape == (4,)
        self.calls.append(float(state[2]))
        return np.array([1.0, -1.0], np.float32)


def test_rollout_acts_at_the_horizon_steps_and_holds_actions() -> None:
    family = get_family("reaching", **FAMILY_CONFIG)
    env = family.make_env(family.tasks("test")[0], 3, render=False)
    policy = _Counting()
    try:
        outcome = rollout(family, env, policy, subsample_indices(STEPS, 5), record=True)
        fingertip_to_target = float(np.linalg.norm(env.fingertip() - env.object_position("target")))
    finally:
        env.close()
    assert len(policy.calls) == 5 and outcome.error is None and isinstance(outcome.success, bool)
    assert outcome.chosen in ("target", "distractor_0", "distractor_1")
    assert outcome.target_distance == pytest.approx(fingertip_to_target)
    assert len(outcome.frames) == STEPS + 1 and outcome.frames[0].shape == (64, 80, 3)  # every step + final


def test_a_policy_that_reads_no_images_gets_no_renders() -> None:
    """The random baseline's rollouts skip rendering (most of a cheap trial's time); actions are the same."""
    family = get_family("reaching", **FAMILY_CONFIG)

    class Blind(_Counting):
        reads_images = False

        def act(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
            assert image.size == 0
            self.calls.append(float(state[2]))
            return np.array([1.0, -1.0], np.float32)

    def run(policy: _Counting) -> tuple[int, tuple[bool, float | None, list[float]]]:
        env = family.make_env(family.tasks("test")[0], 3, render=False)
        renders = []
        real_render = env.render_camera
        env.render_camera = lambda: renders.append(1) or real_render()  # count the real renders
        try:
            outcome = rollout(family, env, policy, subsample_indices(STEPS, 5))
        finally:
            env.close()
        return len(renders), (outcome.success, outcome.target_distance, policy.calls)

    (seeing_renders, seeing), (blind_renders, blind) = run(_Counting()), run(Blind())
    assert (seeing_renders, blind_renders) == (5, 0)
    assert seeing == blind


@pytest.mark.parametrize("name", ["pushing", "placing", "reaching"])
def test_role_swapped_demos_show_the_distractor_as_the_target(name: str) -> None:
    """The swapped-demo control exchanges target and first distractor, in every family, and nothing else."""
    family = get_family(name)
    task = family.tasks("test")[0]
    swapped = evaluate_module.role_swapped(family, task)
    first = next(r for r in task.objects if r.startswith("distractor"))
    assert (swapped.objects["target"], swapped.objects[first]) == (task.objects[first], task.objects["target"])
    assert {r: o for r, o in swapped.objects.items() if r not in ("target", first)} == {
        r: o for r, o in task.objects.items() if r not in ("target", first)
    }


def test_swapped_demo_roles_demonstrate_the_other_object() -> None:
    """The control's demo is a successful demo of the swapped task: it pushes the trial's distractor."""
    family = get_family("pushing")
    task = family.tasks("test")[0]
    settings = evaluate_module.EvalSettings(tasks=1, trials=1, swap_demo_roles=True)
    (demo,) = evaluate_module.make_demos(family, 0, 1, settings, avoid=set())
    assert demo.success and demo.task.objects["target"] == task.objects["distractor"]
    (own,) = evaluate_module.make_demos(family, 0, 1, dataclasses.replace(settings, swap_demo_roles=False), set())
    assert own.task == task


def test_strip_demo() -> None:
    demo = DemoBatch(torch.rand(1, 3, 3, 4, 4), torch.randn(1, 3, 6), torch.randn(1, 3, 2), torch.randn(1, 2))
    assert strip_demo(demo, "full") is demo
    no_act = strip_demo(demo, "no_actions")
    assert torch.equal(no_act.states, demo.states) and not no_act.actions.any() and no_act.targets is not None
    video = strip_demo(demo, "video_only")
    assert torch.equal(video.images, demo.images) and not video.states.any() and not video.actions.any()
    assert video.targets is None


def test_end_to_end_random_and_untrained_mil(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    rc = main(
        [
            "--checkpoint",
            str(checkpoints["mil"]),
            "--method",
            "random",
            "--tasks",
            "2",
            "--trials",
            "2",
            "--shots",
            "1",
            "2",
            "--out",
            str(out),
            "--videos",
            "1",
            "--no-progress",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    table = capsys.readouterr().out
    label = f"mil ({checkpoints['mil'].parent.name}/mil_tiny)"
    assert label in table and "random" in table and "95% CI" in table
    for name in ("results.json", "results.csv", "trials.csv", "success.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    doc = json.loads((out / "results.json").read_text())
    summary = {(r["label"], r["shots"]): r for r in doc["summary"]}
    assert set(summary) == {(label, 1), (label, 2), ("random", 0)}
    assert all(r["trials"] == 4 and r["ci_low"] <= r["rate"] <= r["ci_high"] for r in summary.values())
    trials = doc["trials"]
    assert len(trials) == 12
    assert all(t["target_distance"] >= 0.0 for t in trials)
    assert all(r["median_target_distance"] is not None for r in summary.values())
    # Every method meets the same scenes; demos are never laid out like a trial of their task.
    by_task: dict[int, set[int]] = {}
    for t in trials:
        by_task.setdefault(t["task_index"], set()).add(t["trial_seed"])
        assert t["task_id"].startswith("reaching/test/")
        assert not set(t["demo_seeds"]) & set(trial_seeds(0, t["task_index"], 2))
        assert len(t["demo_seeds"]) == t["shots"]
    assert by_task == {i: set(trial_seeds(0, i, 2)) for i in range(2)}
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 3 and {r["demo_inputs"] for r in rows} == {"full", "none"}
    # Videos: at most one success and one failure per condition, [demo | rollout] side by side.
    videos = [t["video"] for t in trials if t["video"]]
    assert videos and all((out / v).is_file() for v in videos)
    assert sorted(p.name for p in (out / "videos").iterdir()) == sorted(Path(v).name for v in videos)
    for cond in summary:
        for ok in (True, False):
            assert sum(1 for t in trials if t["video"] and (t["label"], t["shots"]) == cond and t["success"] == ok) <= 1
    mil_video = next(v for t in trials if (v := t["video"]) and t["label"].startswith("mil"))
    frames = imageio.mimread(out / mil_video)
    assert len(frames) == STEPS + 1 and frames[0].shape[1] > 2 * 80  # demo beside the rollout


def test_demo_inputs_variants(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """Demos without actions: MIL with two heads and the learned loss, an LSTM trained so, contextual."""
    ckpts = [checkpoints[k] for k in ("video", "lstm_video", "contextual")]
    variants = make_variants(ckpts, demo_inputs=["no_actions", "video_only"])
    assert [(v.method, v.demo_inputs) for v in variants] == [
        (m, d) for m in ("mil", "lstm", "contextual") for d in ("no_actions", "video_only")
    ]
    results = evaluate(variants, EvalSettings(tasks=1, trials=1, out=tmp_path), progress=False)
    assert [(r.method, r.demo_inputs) for r in results] == [(v.method, v.demo_inputs) for v in variants]


def test_parallel_workers_give_the_same_trials(tmp_path: Path) -> None:
    variant = Variant("random", "random", None, "none", "reaching", FAMILY_CONFIG)
    settings = EvalSettings(tasks=2, trials=1, out=tmp_path)
    serial = evaluate([variant], settings, progress=False)
    parallel = evaluate([variant], EvalSettings(tasks=2, trials=1, out=tmp_path, workers=2), progress=False)
    assert serial == parallel


def test_videos_replay_only_the_trials_they_keep(
    checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    variants = make_variants([checkpoints["mil"]], random=True)
    plain = evaluate(variants, EvalSettings(tasks=3, trials=2), progress=False)
    recorded: list[bool] = []
    real_rollout = evaluate_module.rollout

    def counting_rollout(*args: Any, record: bool = False, **kwargs: Any) -> Any:
        recorded.append(record)
        return real_rollout(*args, record=record, **kwargs)

    monkeypatch.setattr(evaluate_module, "rollout", counting_rollout)
    filmed = evaluate(variants, EvalSettings(tasks=3, trials=2, videos=1, out=tmp_path), progress=False)
    assert [dataclasses.replace(r, video=None) for r in filmed] == plain  # filming changes no outcome
    assert recorded.count(False) == len(plain)  # every trial once without the camera...
    outcomes = {(r.label, r.success) for r in plain}
    assert recorded.count(True) == len(outcomes)  # ...and one replay per condition and outcome it had
    for label, success in outcomes:
        first = next(r for r in filmed if (r.label, r.success) == (label, success))
        assert first.video is not None and (tmp_path / first.video).is_file()
        assert all(r.video is None for r in filmed if (r.label, r.success) == (label, success) and r is not first)


def test_a_replay_that_disagrees_keeps_no_video_and_says_so(
    checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rollouts are deterministic, so this cannot happen by itself: the filmed replay is made to disagree."""
    real_rollout = evaluate_module.rollout

    def flipped_replay(*args: Any, record: bool = False, **kwargs: Any) -> Any:
        outcome = real_rollout(*args, record=record, **kwargs)
        return dataclasses.replace(outcome, success=not outcome.success) if record else outcome

    monkeypatch.setattr(evaluate_module, "rollout", flipped_replay)
    variants = make_variants([checkpoints["mil"]])
    with pytest.warns(UserWarning, match="the filmed replay ended in (success|failure) .* no video kept"):
        filmed = evaluate(variants, EvalSettings(tasks=1, trials=1, videos=1, out=tmp_path), progress=False)
    assert [r.video for r in filmed] == [None]
    assert not (tmp_path / "videos").exists() or not any((tmp_path / "videos").iterdir())


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main([*argv, "--tasks", "1", "--trials", "1", "--no-progress"]) == 2
    return capsys.readouterr().err


def test_clear_errors(checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pickled = tmp_path / "policy.pt"
    torch.save({"w": torch.zeros(1)}, pickled)
    assert "pickled" in _error(["--checkpoint", str(pickled)], capsys)
    assert "does not exist" in _error(["--checkpoint", str(tmp_path / "missing")], capsys)
    # Weights that do not match the config beside them.
    bad = tmp_path / "mismatch"
    save_checkpoint(bad, build_method(_config()).module.state_dict(), _config(network={"fc": [32]}))
    assert "does not match the network" in _error(["--checkpoint", str(bad)], capsys)
    assert "unknown task family 'nope'" in _error(["--method", "random", "--family", "nope"], capsys)
    # Demos whose policy images are not the size the network was built for.
    small = '{"image_size": [64, 48]}'
    err = _error(["--checkpoint", str(checkpoints["mil"]), "--family-config", small], capsys)
    assert "64x48" in err and "expects 80x64" in err
    err = _error(["--checkpoint", str(checkpoints["mil"]), "--demo-inputs", "no_actions"], capsys)
    assert "learned_no_actions" in err
    assert "cannot be given only 'video_only'" in _error(
        ["--checkpoint", str(checkpoints["lstm"]), "--demo-inputs", "video_only"], capsys
    )
    assert "nothing to evaluate" in _error([], capsys)
    with pytest.raises(EvaluationError, match="has 150 test tasks"):
        evaluate(
            [Variant("random", "random", None, "none", "reaching")], EvalSettings(tasks=151, trials=1), progress=False
        )


def test_mp4_video(tmp_path: Path) -> None:
    frames = [np.full((64, 80, 3), i * 20, np.uint8) for i in range(5)]
    path = write_rollout_video(tmp_path / "v.mp4", frames, frames[:3], fps=10)
    assert len(imageio.mimread(path)) == 5
