"""The meta-training dataset on real reaching demo bags: cache, staleness, broken demos, sampling."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import mil_policy.dataset as dataset_mod
from mil_policy.colour_augment import apply_colour_transforms
from mil_policy.config import ConfigError, DataConfig, NetworkConfig
from mil_policy.dataset import (
    DatasetError,
    MetaBatchSampler,
    check_compatible,
    find_bags,
    limit_train_tasks,
    load_dataset,
    other_task_demos,
)
from mil_policy.demo_arrays import demo_arrays
from mil_sim import generate
from mil_sim.core import DRIVEN_BY, DRIVEN_BY_POLICY
from mil_sim.demo_bag import read_episode, write_episode
from mil_sim.families import get_family

T = 8
DATA = DataConfig(family="reaching", horizon=T)


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 train tasks x 3 demos and 2 val tasks x 2 demos of the real reaching family (a few seconds)."""
    root = tmp_path_factory.mktemp("demos")
    for split, tasks, per_task in (("train", 3, 3), ("val", 2, 2)):
        argv = [
            "--family",
            "reaching",
            "--split",
            split,
            "--tasks",
            str(tasks),
            "--demos-per-task",
            str(per_task),
            "--out",
            str(root),
        ]
        assert generate.main(argv) == 0
    return root


@pytest.fixture
def train_only(demos: Path, tmp_path: Path) -> Path:
    """A private copy of the train split (tests below modify it)."""
    dst = tmp_path / "demos" / "reaching" / "train"
    shutil.copytree(demos / "reaching" / "train", dst)
    return tmp_path / "demos"


def test_builds_memory_mapped_cache_matching_demo_arrays(demos: Path, tmp_path: Path) -> None:
    ds = load_dataset(demos, DATA, cache_root=tmp_path / "cache", progress=False)
    assert (ds.num_demos, ds.num_tasks) == (13, 5)
    assert ds.images.shape == (13, T, 64, 80, 3) and ds.images.dtype == np.uint8
    assert isinstance(ds.images, np.memmap) and isinstance(ds.states, np.memmap)
    assert (ds.state_dim, ds.action_dim, ds.image_size) == (4, 2, (80, 64))
    assert ds.skipped == [] and json.loads((ds.cache_dir / "skipped.json").read_text()) == []
    # Row i is exactly what demo_arrays makes of bag i (the one conversion policy and evaluation use).
    family = get_family("reaching")
    i = 4
    arr = demo_arrays(read_episode(demos / ds.demo_paths[i]), T, family)
    np.testing.assert_array_equal(ds.images[i], arr.images)
    np.testing.assert_array_equal(ds.states[i], arr.states)
    np.testing.assert_array_equal(ds.actions[i], arr.actions)
    np.testing.assert_array_equal(ds.targets[i], arr.target)
    assert ds.task_ids[ds.task_index[i]] == read_episode(demos / ds.demo_paths[i]).task.task_id
    # The bags carry train and val splits: the split follows them (tasks, not demos).
    split = ds.split_tasks(val_fraction=0.5, seed=0)
    assert split.source == "bag metadata"
    assert [ds.task_ids[t] for t in split.val] == ["reaching/val/0000", "reaching/val/0001"]
    assert len(split.train) == 3


def test_cache_directory_copied_without_bags_trains_as_the_demos(demos: Path, tmp_path: Path) -> None:
    """A cache copied to another machine without its bags loads as is, checked against the data config."""
    built = load_dataset(demos, DATA, cache_root=tmp_path / "cache", progress=False)
    copy = tmp_path / "elsewhere" / built.cache_dir.name
    shutil.copytree(built.cache_dir, copy)
    ds = load_dataset(copy, DATA, progress=False)
    assert ds.cache_dir == copy and (ds.num_demos, ds.num_tasks) == (built.num_demos, built.num_tasks)
    np.testing.assert_array_equal(ds.images, built.images)
    assert ds.task_ids == built.task_ids and ds.task_splits == built.task_splits
    assert ds.split_tasks(val_fraction=0.5, seed=0) == built.split_tasks(val_fraction=0.5, seed=0)

    with pytest.raises(DatasetError, match="horizon 8, config wants 5"):
        load_dataset(copy, DataConfig(family="reaching", horizon=5), progress=False)
    with pytest.raises(DatasetError, match="family 'reaching', config wants 'placing'"):
        load_dataset(copy, DataConfig(family="placing", horizon=T), progress=False)
    with pytest.raises(DatasetError, match="cannot be rebuilt without the bags"):
        load_dataset(copy, DATA, rebuild=True, progress=False)
    (copy / "states.npy").unlink()
    with pytest.raises(DatasetError, match=r"incomplete or corrupt \(missing: \['states.npy'\]\)"):
        load_dataset(copy, DATA, progress=False)
    for text in ("{not json", "[1, 2]"):
        (copy / "meta.json").write_text(text)
        with pytest.raises(DatasetError, match=r"cannot read meta\.json"):
            load_dataset(copy, DATA, progress=False)


def test_cache_is_reused_then_rebuilt_when_stale(train_only: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_dataset(train_only, DATA, progress=False)
    assert first.cache_dir.parent == train_only / ".mil_cache"
    stamp = (first.cache_dir / "meta.json").stat().st_mtime_ns

    def no_decoding(path: object) -> None:
        raise AssertionError("a current cache must not decode bags again")

    with monkeypatch.context() as m:
        m.setattr(dataset_mod, "read_episode", no_decoding)
        again = load_dataset(train_only, DATA, progress=False)
    assert again.cache_dir == first.cache_dir and again.num_demos == 9
    assert (again.cache_dir / "meta.json").stat().st_mtime_ns == stamp

    # Another horizon is another cache (both kept); a removed bag makes the cache stale: rebuilt.
    assert load_dataset(train_only, DataConfig(family="reaching", horizon=5), progress=False).horizon == 5
    removed = sorted((train_only / "reaching" / "train").glob("*/demo_2"))[0]
    shutil.rmtree(removed)
    rebuilt = load_dataset(train_only, DATA, progress=False)
    assert rebuilt.num_demos == 8 and rebuilt.cache_dir == first.cache_dir
    assert removed.relative_to(train_only).as_posix() not in rebuilt.demo_paths
    assert len(list((train_only / ".mil_cache").iterdir())) == 2  # no temp or old dirs left behind


def _write_variant(src: Path, dst: Path, **changes: object) -> None:
    episode = read_episode(src)
    write_episode(dst, dataclasses.replace(episode, **changes), get_family("reaching").state_names)


def test_perturbed_demos_train_on_their_labels_not_the_applied_actions(train_only: Path) -> None:
    """A DART-style bag applies noisy actions and records the expert's choice as the label: the policy
    must learn the label (the correction), never the noise that was applied."""
    bag = sorted((train_only / "reaching" / "train").glob("*/demo_0"))[0]
    episode = read_episode(bag)
    labels = (episode.actions * 0.5 + 0.25).astype(np.float32)
    shutil.rmtree(bag)
    write_episode(bag, dataclasses.replace(episode, labels=labels), get_family("reaching").state_names)
    ds = load_dataset(train_only, DATA, progress=False)
    i = ds.demo_paths.index(bag.relative_to(train_only).as_posix())
    steps = demo_arrays(episode, T, get_family("reaching")).steps
    np.testing.assert_array_equal(ds.actions[i], labels[steps])
    assert not np.array_equal(ds.actions[i], episode.actions[steps])


def test_policy_driven_rollouts_are_never_adapted_on_and_a_task_of_only_those_is_skipped(train_only: Path) -> None:
    """DAgger rollouts (``driven_by: policy``) supervise as evaluation demos; at test time a policy adapts
    on a real demonstration, so training must never adapt on one, and a task without any is unusable."""
    tasks = sorted(p for p in (train_only / "reaching" / "train").iterdir() if p.is_dir())

    def mark(bag: Path) -> None:
        episode = read_episode(bag)
        shutil.rmtree(bag)
        metadata = {**episode.metadata, DRIVEN_BY: DRIVEN_BY_POLICY}
        write_episode(bag, dataclasses.replace(episode, metadata=metadata), get_family("reaching").state_names)

    for bag in (tasks[0] / "demo_1", tasks[0] / "demo_2", *tasks[1].glob("demo_*")):
        mark(bag)
    ds = load_dataset(train_only, DATA, progress=False)
    assert ds.num_tasks == 2 and ds.num_demos == 6  # task 1 skipped
    assert any("no demonstration to adapt on" in s.reason for s in ds.skipped)
    first = ds.task_ids.index(read_episode(tasks[0] / "demo_0").task.task_id)
    only_demo = ds.demo_paths.index((tasks[0] / "demo_0").relative_to(train_only).as_posix())
    assert ds.adaptable_demos_of(first).tolist() == [only_demo]
    sampler = MetaBatchSampler(ds, range(ds.num_tasks), meta_batch=2, shots=1, seed=0)
    evaluated = set()
    for _ in range(30):
        idx = sampler.sample_indices()
        row = idx.demos[list(idx.tasks).index(first)]
        assert row[0] == only_demo and row[1] != only_demo
        evaluated.add(int(row[1]))
    assert len(evaluated) == 2  # both rollouts serve as evaluation demos
    with pytest.raises(DatasetError, match="demonstrations"):
        MetaBatchSampler(ds, range(ds.num_tasks), meta_batch=2, shots=2, seed=0)  # task 0 has one


def test_broken_demos_are_skipped_and_reported(train_only: Path, capsys: pytest.CaptureFixture) -> None:
    tasks = sorted(p for p in (train_only / "reaching" / "train").iterdir() if p.is_dir())
    bag0 = tasks[0] / "demo_0"
    # A truncated MCAP, an MCAP of random bytes, and a bag directory without metadata.
    (mcap,) = (tasks[0] / "demo_1").glob("*.mcap")
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    (mcap2,) = (tasks[1] / "demo_0").glob("*.mcap")
    mcap2.write_bytes(np.random.default_rng(0).bytes(4096))
    (tasks[2] / "demo_7").mkdir()
    # Well-formed bags with unusable content: NaN states, too short, wrong image size.
    ep = read_episode(bag0)
    nan_states = ep.states.copy()
    nan_states[3, 1] = np.nan
    _write_variant(bag0, tasks[2] / "demo_3", states=nan_states)
    n = T - 2
    short = {
        f: getattr(ep, f)[:n]
        for f in ("times", "states", "ee_poses", "joint_positions", "joint_velocities", "gripper_open", "actions")
    }
    _write_variant(bag0, tasks[2] / "demo_4", **short, image_times=ep.image_times[:n], images=ep.images[:n])
    _write_variant(bag0, tasks[2] / "demo_5", images=np.ascontiguousarray(ep.images[:, ::2, ::2]))

    ds = load_dataset(train_only, DATA, progress=True)
    reasons = {s.path.split("/", 2)[-1]: s.reason for s in ds.skipped}
    t0, t1, t2 = (t.name for t in tasks)
    assert f"{t0}/demo_1" in reasons and "DemoBagError" in reasons[f"{t0}/demo_1"]
    assert "DemoBagError" in reasons[f"{t1}/demo_0"]
    assert "not a rosbag2 bag" in reasons[f"{t2}/demo_7"]
    assert "NaN" in reasons[f"{t2}/demo_3"] and "DemoError" in reasons[f"{t2}/demo_3"]
    assert "fewer than the horizon" in reasons[f"{t2}/demo_4"]
    assert "does not fit this policy" in reasons[f"{t2}/demo_5"]
    # Tasks 0 and 1 keep 2 demos each and task 2 its 3: enough for MIL, so all three remain.
    assert ds.num_demos == 9 - 2 and ds.num_tasks == 3
    on_disk = json.loads((ds.cache_dir / "skipped.json").read_text())
    assert {d["path"] for d in on_disk} == {s.path for s in ds.skipped} and len(on_disk) == 6
    err = capsys.readouterr().err
    assert "skipped 6 of 13 demos" in err and "skipped.json" in err
    assert "skipped 6 demos" in ds.summary()


def test_lone_demos_and_all_bad_directories(train_only: Path, tmp_path: Path) -> None:
    for bag in sorted((train_only / "reaching" / "train").glob("*/demo_[12]"))[:4]:
        shutil.rmtree(bag)  # tasks 0 and 1 keep one demo each
    ds = load_dataset(train_only, DATA, progress=False)
    assert ds.num_tasks == 1 and ds.num_demos == 3
    assert sum("MIL needs >= 2" in s.reason for s in ds.skipped) == 2

    bad = tmp_path / "bad" / "reaching" / "train" / "t" / "demo_0"
    bad.mkdir(parents=True)
    (bad / "metadata.yaml").write_text("{not: [yaml")
    with pytest.raises(DatasetError, match=r"no usable demos .* all 1 were skipped"):
        load_dataset(tmp_path / "bad", DATA, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no demo bags under .*generate_demos --family reaching"):
        load_dataset(tmp_path / "empty", DATA, progress=False)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "missing", DATA, progress=False)


def test_find_bags_skips_hidden_dirs(demos: Path) -> None:
    bags = find_bags(demos, "reaching")
    assert len(bags) == 13 and all(b.name.startswith("demo_") for b in bags)
    assert not [b for b in bags if any(part.startswith(".") for part in b.relative_to(demos).parts)]


def test_seeded_task_split_when_bags_have_one_split(train_only: Path) -> None:
    ds = load_dataset(train_only, DATA, progress=False)
    a, b = ds.split_tasks(0.34, seed=3), ds.split_tasks(0.34, seed=3)
    assert a == b and a.source == "seeded fraction"
    assert len(a.val) == 1 and sorted(a.train + a.val) == [0, 1, 2]
    assert ds.split_tasks(0.0, seed=0).val == []


def test_train_task_limit_keeps_a_prefix_and_the_validation_tasks(train_only: Path) -> None:
    ds = load_dataset(train_only, DATA, progress=False)
    split = ds.split_tasks(0.34, seed=3)
    one = limit_train_tasks(split, 1)
    assert one.train == split.train[:1] and one.val == split.val and one.source == split.source
    assert limit_train_tasks(split, len(split.train)) == split
    with pytest.raises(DatasetError, match="only 2 training tasks"):
        limit_train_tasks(split, 3)
    with pytest.raises(ConfigError, match="train_tasks"):
        DataConfig(family="reaching", train_tasks=0)


def test_sampler_shapes_frames_and_distinct_demos(demos: Path, tmp_path: Path) -> None:
    ds = load_dataset(demos, DATA, cache_root=tmp_path / "cache", progress=False)
    train = ds.split_tasks(0.1, 0).train
    sampler = MetaBatchSampler(ds, train, meta_batch=3, shots=2, frames_per_demo=4, seed=0)
    a, b = sampler.sample()
    assert a.images.shape == (3, 2, 4, 3, 64, 80) and b.images.shape == (3, 1, 4, 3, 64, 80)
    assert a.images.dtype == torch.float32 and a.images.min() >= 0.0 and a.images.max() <= 1.0
    assert a.states.shape == (3, 2, 4, 4) and a.actions.shape == (3, 2, 4, 2) and a.targets.shape == (3, 2, 2)
    assert b.states.shape == (3, 1, 4, 4) and b.targets.shape == (3, 1, 2)
    for _ in range(30):
        idx = sampler.sample_indices()
        assert len(set(idx.tasks.tolist())) == 3 and set(idx.tasks.tolist()) <= set(train)
        for task, row, frames in zip(idx.tasks, idx.demos, idx.frames, strict=True):
            assert len(set(row.tolist())) == 3  # 2 adaptation demos + 1 evaluation demo, all different
            assert (ds.task_index[row] == task).all()
            assert (frames[:, 0] == 0).all() and (np.diff(frames, axis=-1) > 0).all()
            assert (frames[:, -1] == ds.horizon - 1).all()  # the final frame: the contextual policy's input
    # The tensors hold exactly the indexed frames of the indexed demos.
    idx = sampler.sample_indices()
    a, b = sampler.load(idx)
    d, f = idx.demos[1, 0], idx.frames[1, 0]
    expected = torch.from_numpy(ds.images[d][f].astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    torch.testing.assert_close(a.images[1, 0], expected)
    expected_actions = torch.from_numpy(ds.actions[idx.demos[2, 2]][idx.frames[2, 2]])
    torch.testing.assert_close(b.actions[2, 0], expected_actions)
    # A share of the tasks (what a DDP rank loads) is the matching slice of the whole meta-batch.
    a_part, _ = sampler.load(idx, slice(1, 3))
    torch.testing.assert_close(a_part.images, a.images[1:3])
    full = MetaBatchSampler(ds, train, meta_batch=2, seed=1)
    assert full.sample()[0].images.shape == (2, 1, T, 3, 64, 80)


def test_colour_augmentation_recolours_each_task_alike_and_draws_the_same_demos(demos: Path, tmp_path: Path) -> None:
    """One transform per task, for its adaptation and evaluation demos; tasks, demos and frames unchanged."""
    ds = load_dataset(demos, DATA, cache_root=tmp_path / "cache", progress=False)
    train = ds.split_tasks(0.1, 0).train
    plain = MetaBatchSampler(ds, train, meta_batch=3, frames_per_demo=4, seed=5)
    recoloured = MetaBatchSampler(ds, train, meta_batch=3, frames_per_demo=4, seed=5, colour_augmentation=True)
    for _ in range(3):
        i_plain, i_col = plain.sample_indices(), recoloured.sample_indices()
        np.testing.assert_array_equal(i_plain.demos, i_col.demos)
        np.testing.assert_array_equal(i_plain.frames, i_col.frames)
    assert i_plain.colour is None and i_col.colour is not None and i_col.colour.shape == (3, 3, 3)
    (a0, b0), (a1, b1) = plain.load(i_plain), recoloured.load(i_col)
    for raw, col in ((a0, a1), (b0, b1)):
        torch.testing.assert_close(col.images, apply_colour_transforms(raw.images, i_col.colour))
        torch.testing.assert_close(col.actions, raw.actions)
    assert not torch.allclose(a1.images, a0.images)
    # A DDP rank's share gets its tasks' transforms; "another task's demo" keeps the row's transform.
    part, _ = recoloured.load(i_col, slice(1, 3))
    torch.testing.assert_close(part.images, a1.images[1:3])
    assert other_task_demos(i_col, 1).colour is i_col.colour


def test_sampler_and_compatibility_errors(demos: Path, tmp_path: Path) -> None:
    ds = load_dataset(demos, DATA, cache_root=tmp_path / "cache", progress=False)
    train = ds.split_tasks(0.1, 0).train
    with pytest.raises(DatasetError, match=r"meta_batch=4 needs 4 distinct train tasks .* only 3"):
        MetaBatchSampler(ds, train, meta_batch=4)
    val = ds.split_tasks(0.1, 0).val  # 2 demos each: not enough for 2 shots + 1
    with pytest.raises(DatasetError, match=r"at least 3 demos .* only 0 such tasks \(of 2\)"):
        MetaBatchSampler(ds, val, meta_batch=1, shots=2, name="val")
    check_compatible(ds, NetworkConfig(image_width=80, image_height=64, state_dim=4, action_dim=2))
    with pytest.raises(DatasetError, match=r"images are 80x64 .* network expects 100x90"):
        check_compatible(ds, NetworkConfig(state_dim=4, action_dim=2))
    with pytest.raises(DatasetError, match=r"states have 4 dims but network.state_dim is 11.*actions have 2"):
        check_compatible(ds, NetworkConfig(image_width=80, image_height=64))
