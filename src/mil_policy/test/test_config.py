"""Preset files: the ``base:`` chain (variants list only what differs) and its errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from mil_policy.config import ConfigError, MilConfig, read_preset

ROOT = Path(__file__).resolve().parents[3]

BASE = """
method: mil
network: {image_width: 40, image_height: 30, state_dim: 4, action_dim: 2, fc: [50, 50], predict_target: true}
maml: {meta_batch: 8, inner_lr: 0.001, inner_lr_scale: {convs.0.weight: 5.0, head: 0.2}, learn_inner_lr: true}
data: {family: reaching, family_config: {image_size: [40, 30], disc_radius: 0.04}, horizon: 50}
train: {iterations: 100}
"""


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def test_variant_merges_sections_field_by_field_and_replaces_mappings_whole(tmp_path: Path) -> None:
    _write(tmp_path / "presets", "base.yaml", BASE)
    variant = _write(
        tmp_path / "presets" / "variants",
        "v.yaml",
        "base: ../base.yaml\n"
        "network: {fc: [20]}\n"
        "maml: {inner_lr_scale: {head: 1.0}}\n"
        "data: {family_config: {image_size: [40, 30]}}\n",
    )
    d = read_preset(variant)
    assert "base" not in d
    # Fields the variant does not name come from the base ...
    assert d["network"] == {
        "image_width": 40,
        "image_height": 30,
        "state_dim": 4,
        "action_dim": 2,
        "fc": [20],
        "predict_target": True,
    }
    assert d["maml"]["meta_batch"] == 8 and d["train"] == {"iterations": 100} and d["method"] == "mil"
    # ... but a mapping-valued field is the variant's alone: no inherited step size or disc radius.
    assert d["maml"]["inner_lr_scale"] == {"head": 1.0}
    assert d["data"]["family_config"] == {"image_size": [40, 30]}
    cfg = MilConfig.load(variant)
    assert cfg.network.fc == [20] and cfg.maml.inner_lr_scale == {"head": 1.0} and cfg.data.horizon == 50


def test_bases_chain_and_the_nearest_file_wins(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", BASE)
    _write(tmp_path, "b.yaml", "base: a.yaml\ntrain: {iterations: 200}\nmaml: {meta_batch: 4}\n")
    c = _write(tmp_path, "c.yaml", "base: b.yaml\ntrain: {iterations: 300}\n")
    cfg = MilConfig.load(c)
    assert (cfg.train.iterations, cfg.maml.meta_batch, cfg.maml.inner_lr) == (300, 4, 0.001)


BAD_PRESETS = {
    "a.yaml": "base: b.yaml\n",
    "b.yaml": "base: a.yaml\n",
    "orphan.yaml": "base: missing.yaml\n",
    "listbase.yaml": "base: [a.yaml]\n",
    "broken.yaml": "network: {image_width: 40\n",
    "list.yaml": "- 1\n",
    "good.yaml": BASE,
    "typo.yaml": "base: good.yaml\nnetwrok: {fc: [1]}\n",
}


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("a.yaml", "is its own base"),
        ("orphan.yaml", r"missing\.yaml does not exist \(base of .*orphan\.yaml\)"),
        ("listbase.yaml", "base must be a file name"),
        ("broken.yaml", r"broken\.yaml is not valid YAML"),
        ("list.yaml", "expected a mapping"),
        ("typo.yaml", "unknown config sections"),
    ],
)
def test_preset_errors_are_config_errors_that_name_the_file(tmp_path: Path, name: str, error: str) -> None:
    for file_name, text in BAD_PRESETS.items():
        _write(tmp_path, file_name, text)
    with pytest.raises(ConfigError, match=error):
        MilConfig.load(tmp_path / name)


def test_shipped_variants_differ_from_their_base_only_where_they_say() -> None:
    base = MilConfig.load(ROOT / "config" / "train_placing_40x30.yaml").to_dict()
    wide = MilConfig.load(ROOT / "config" / "train_placing_60x40.yaml").to_dict()
    assert (wide["network"]["image_width"], wide["network"]["image_height"]) == (60, 40)
    assert wide["data"]["family_config"]["crop_x"] == 10
    for section in ("network", "data"):
        for d in (base, wide):
            d[section] = {
                k: v for k, v in d[section].items() if k not in ("image_width", "image_height", "family_config")
            }
    assert wide == base


@pytest.mark.parametrize(
    ("train", "error"),
    [
        ({"snapshot_every": -1}, "snapshot_every must be >= 0"),
        ({"val_every": 0}, "val_every must be at least 1"),
        ({"checkpoint_every": 0}, "checkpoint_every must be at least 1"),
    ],
)
def test_train_intervals_are_checked(train: dict[str, int], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        MilConfig.from_dict({"train": train})


def test_cosine_meta_lr_holds_then_falls_to_its_final_fraction() -> None:
    maml = MilConfig.from_dict(
        {"maml": {"meta_lr": 1e-3, "meta_lr_schedule": "cosine", "meta_lr_decay_from": 100, "meta_lr_final": 0.1}}
    ).maml
    lrs = [maml.meta_lr_at(i, 300) for i in range(301)]
    assert lrs[0] == lrs[100] == 1e-3  # held until the decay starts
    assert lrs[200] == pytest.approx(0.55e-3)  # half way down: the mean of the two ends
    assert lrs[300] == pytest.approx(1e-4)
    assert all(a >= b for a, b in itertools.pairwise(lrs))
    assert maml.meta_lr_at(400, 300) == pytest.approx(1e-4)  # past the end it stays at the floor
    assert maml.meta_lr_at(100, 100) == 1e-3  # a run no longer than decay_from never decays (no 0 / 0)
    constant = MilConfig.from_dict({"maml": {"meta_lr": 1e-3, "meta_lr_decay_from": 100}}).maml
    assert {constant.meta_lr_at(i, 300) for i in (0, 150, 300)} == {1e-3}


@pytest.mark.parametrize(
    ("maml", "error"),
    [
        ({"meta_lr_schedule": "linear"}, "meta_lr_schedule must be 'constant' or 'cosine'"),
        ({"meta_lr_decay_from": -1}, "meta_lr_decay_from must be an iteration >= 0"),
        ({"meta_lr_final": 1.5}, r"meta_lr_final is a fraction of meta_lr in \[0, 1\]"),
    ],
)
def test_meta_lr_schedule_errors(maml: dict[str, object], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        MilConfig.from_dict({"maml": maml})
