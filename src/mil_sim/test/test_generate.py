"""generate_demos end to end on the real reaching family: bags, index, resume, retries, CLI errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mil_sim import generate
from mil_sim.core import Expert
from mil_sim.demo_bag import read_episode, read_task_metadata
from mil_sim.families import get_family
from mil_sim.families.reaching import ReachingFamily


def run(tmp_path: Path, *extra: str, tasks: int = 2, demos: int = 2, workers: int = 1) -> int:
    argv = ["--family", "reaching", "--split", "train", "--out", str(tmp_path)]
    argv += ["--tasks", str(tasks), "--demos-per-task", str(demos), "--workers", str(workers), *extra]
    return generate.main(argv)


def bag_mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*.mcap")}


def test_generates_bags_and_index_in_parallel_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run(tmp_path, workers=2) == 0
    out = tmp_path / "reaching" / "train"
    family = get_family("reaching")
    tasks = family.tasks("train")[:2]
    expected = sorted(f"{t.task_id.replace('/', '_')}/demo_{k}" for t in tasks for k in range(2))
    index = json.loads((out / "index.json").read_text())
    assert (index["family"], index["split"], index["num_demos"]) == ("reaching", "train", 4)
    assert sorted(e["path"] for e in index["demos"]) == expected
    for ti, task in enumerate(tasks):
        for k in range(2):
            bag = out / task.task_id.replace("/", "_") / f"demo_{k}"
            entry = next(e for e in index["demos"] if e["path"] == f"{bag.parent.name}/{bag.name}")
            allowed = {generate.derive_seeds(0, ti, k, a)[0] for a in range(generate.DEFAULT_MAX_RETRIES + 1)}
            assert entry["task_id"] == task.task_id and entry["trial_seed"] in allowed
            assert entry["success"] is True and entry["n_steps"] == entry["n_frames"] == family.episode_steps
    ep = read_episode(out / expected[0])
    assert ep.success and ep.action_kind == "joint_effort" and ep.task in tasks
    assert ep.images.shape == (family.episode_steps, 64, 80, 3) and ep.images.dtype == np.uint8
    assert read_task_metadata(out / expected[0])["source"] == "sim_expert"
    assert "4 demos written, 0 already present" in capsys.readouterr().out

    before = bag_mtimes(tmp_path)
    assert run(tmp_path) == 0  # resumable: nothing new to write
    assert bag_mtimes(tmp_path) == before
    assert "0 demos written, 4 already present" in capsys.readouterr().out
    assert not [p for p in out.rglob(".*") if p.name != "index.json"]  # no temp dirs left


def test_family_config_overrides_reach_the_bags(tmp_path: Path) -> None:
    assert run(tmp_path, "--family-config", '{"image_size": [40, 32], "disc_radius": 0.04}', tasks=1, demos=1) == 0
    (bag,) = (p.parent for p in tmp_path.rglob("*.mcap"))
    assert read_episode(bag).images.shape[1:] == (32, 40, 3)


def test_perturbed_demos_apply_noise_and_keep_the_experts_labels(tmp_path: Path) -> None:
    assert run(tmp_path / "p", "--perturb", "0.05", tasks=1, demos=1) == 0
    (bag,) = (p.parent for p in (tmp_path / "p").rglob("*.mcap"))
    ep = read_episode(bag)
    meta = read_task_metadata(bag)
    assert ep.labels is not None and meta["metadata"]["perturb_std"] == 0.05
    applied_minus_label = (ep.actions - ep.labels).ravel()
    assert 0.03 < float(np.std(applied_minus_label)) < 0.07  # the injected noise, before clipping
    # The labels are what the expert asked for on the perturbed states: re-running the same expert on
    # the same trial and feeding it the recorded applied actions reproduces every label.
    family = get_family("reaching")
    env = family.make_env(ep.task, ep.trial_seed, render=False)
    expert = family.make_expert(env, int(meta["metadata"]["expert_seed"]), 1.0)
    obs = env.reset()
    for label, applied in zip(ep.labels, ep.actions, strict=True):
        np.testing.assert_allclose(expert(obs), label, rtol=0, atol=1e-6)
        obs = env.step(applied)
    env.close()
    assert run(tmp_path / "q", tasks=1, demos=1) == 0
    (plain,) = (p.parent for p in (tmp_path / "q").rglob("*.mcap"))
    assert read_episode(plain).labels is None


@pytest.mark.parametrize("extra", [["--perturb", "0.05"], ["--noise", "0.5"], ["--seed", "3"]])
def test_resuming_with_other_settings_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str]
) -> None:
    """Existing bags are skipped on resume, so demos of two kinds would mix silently: refused instead."""
    assert run(tmp_path, tasks=1, demos=1) == 0
    before = bag_mtimes(tmp_path)
    assert run(tmp_path, *extra, tasks=1, demos=2) == 2
    assert "give these demos another --out" in capsys.readouterr().err
    assert bag_mtimes(tmp_path) == before


def test_a_later_bag_made_otherwise_is_caught_too(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Not only the first bag speaks: a directory already mixed (a bag copied in from another seed's
    run) is refused, naming the odd bag."""
    assert run(tmp_path / "a", tasks=1, demos=1) == 0
    assert run(tmp_path / "b", "--seed", "3", tasks=1, demos=2) == 0
    (odd,) = (p.parent for p in (tmp_path / "b").rglob("demo_1/*.mcap"))
    shutil.copytree(odd, tmp_path / "a" / odd.relative_to(tmp_path / "b"))
    capsys.readouterr()
    assert run(tmp_path / "a", tasks=1, demos=3) == 2
    err = capsys.readouterr().err
    assert "demo_1 was made with generator_seed 3 (asked 0)" in err and "give these demos another --out" in err
    assert not list((tmp_path / "a").rglob("demo_2"))


def test_resume_reads_only_bags_the_index_does_not_know(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed run takes unchanged bags' settings from index.json (no YAML parsing per bag), yet a bag
    replaced since the index was written is read again, so the settings check still sees it."""
    assert run(tmp_path / "a", tasks=1, demos=2) == 0
    assert run(tmp_path / "b", "--seed", "3", tasks=1, demos=2) == 0
    parsed: list[Path] = []
    real = generate.read_task_metadata

    def counting(path: Path) -> dict:
        parsed.append(Path(path))
        return real(path)

    monkeypatch.setattr(generate, "read_task_metadata", counting)
    assert run(tmp_path / "a", tasks=1, demos=2) == 0
    assert parsed == []
    out_a, out_b = tmp_path / "a" / "reaching" / "train", tmp_path / "b" / "reaching" / "train"
    entry = json.loads((out_a / "index.json").read_text())["demos"][0]
    assert (entry["generator_seed"], entry["expert_noise"], entry["perturb_std"]) == (0, 1.0, 0.0)

    (bag,) = {p.parent for p in out_a.rglob("demo_0/*.mcap")}
    shutil.rmtree(bag)
    shutil.copytree(out_b / bag.relative_to(out_a), bag)  # same path, another seed's bag
    capsys.readouterr()
    assert run(tmp_path / "a", tasks=1, demos=3) == 2
    assert parsed == [bag]
    assert "demo_0 was made with generator_seed 3 (asked 0)" in capsys.readouterr().err


def test_same_seed_same_dataset(tmp_path: Path) -> None:
    assert run(tmp_path / "a", tasks=1, demos=1) == 0
    assert run(tmp_path / "b", tasks=1, demos=1) == 0
    (a,) = (tmp_path / "a").rglob("*.mcap")
    (b,) = (tmp_path / "b").rglob("*.mcap")
    assert a.read_bytes() == b.read_bytes()


def _failing_first(monkeypatch: pytest.MonkeyPatch, fail_calls: int) -> None:
    """The real expert, except that the first ``fail_calls`` rollouts send zero torque (and so fail)."""
    real = ReachingFamily.make_expert
    calls = {"n": 0}

    def make_expert(self: ReachingFamily, env: object, seed: int, noise: float = 1.0) -> Expert:
        calls["n"] += 1
        if calls["n"] <= fail_calls:
            return lambda obs: np.zeros(2, dtype=np.float32)
        return real(self, env, seed, noise)

    monkeypatch.setattr(ReachingFamily, "make_expert", make_expert)


def test_failed_rollout_is_retried_with_the_next_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _failing_first(monkeypatch, fail_calls=1)
    assert run(tmp_path, tasks=1, demos=1) == 0
    (bag,) = (p.parent for p in tmp_path.rglob("*.mcap"))
    meta = read_task_metadata(bag)
    assert meta["trial_seed"] == generate.derive_seeds(0, 0, 0, 1)[0]
    assert meta["metadata"]["attempt"] == 1 and meta["success"] is True


def test_gives_up_after_max_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _failing_first(monkeypatch, fail_calls=100)
    assert run(tmp_path, "--max-retries", "2", tasks=1, demos=1) == 1
    assert not list(tmp_path.rglob("*.mcap"))
    out = capsys.readouterr()
    assert "1 failed after 2 retries" in out.out and "expert failed 3 times" in out.err
    assert json.loads((tmp_path / "reaching" / "train" / "index.json").read_text())["num_demos"] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--family", "nope"], "unknown task family 'nope'"),
        (["--family", "reaching", "--split", "holdout"], "unknown split 'holdout'"),
        (["--family", "reaching", "--tasks", "0"], "--tasks must be positive"),
        (["--family", "reaching", "--demos-per-task", "-1"], "--demos-per-task must be positive"),
        (["--family", "reaching", "--workers", "0"], "--workers must be positive"),
        (["--family", "reaching", "--perturb", "-0.1"], "--perturb must not be negative"),
        (["--family", "reaching", "--camera-width", "64"], "has no config field(s) among camera_width"),
        (["--family", "reaching", "--family-config", "[40, 32]"], "--family-config must be a JSON object"),
        (["--family", "reaching", "--family-config", '{"image_size": [0, 32]}'], "image width must be positive"),
    ],
)
def test_cli_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exc:
        generate.main([*argv, "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_crash_midway_keeps_finished_bags_indexed_and_resume_fills_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ReachingFamily.make_expert
    calls = {"n": 0}

    def make_expert(self: ReachingFamily, env: object, seed: int, noise: float = 1.0) -> Expert:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("expert crashed")
        return real(self, env, seed, noise)

    monkeypatch.setattr(ReachingFamily, "make_expert", make_expert)
    with pytest.raises(RuntimeError, match="expert crashed"):
        run(tmp_path, tasks=1, demos=2)
    index_path = tmp_path / "reaching" / "train" / "index.json"
    assert [e["path"] for e in json.loads(index_path.read_text())["demos"]] == ["reaching_train_0000/demo_0"]
    before = bag_mtimes(tmp_path)
    assert run(tmp_path, tasks=2, demos=2) == 0  # resume and grow: only the 3 missing bags are written
    after = bag_mtimes(tmp_path)
    assert len(after) == 4 and all(after[k] == v for k, v in before.items())
    assert json.loads(index_path.read_text())["num_demos"] == 4
