"""``diagnose`` on real reaching demos: the own-vs-other-demo comparison, per-frame errors, softmax peaks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from mil_policy import diagnose
from mil_policy.checkpoint import save_checkpoint
from mil_policy.config import MilConfig
from mil_policy.dataset import MetaBatchSampler, load_dataset
from mil_policy.methods import build_method

CONFIG = Path(__file__).resolve().parents[3] / "config" / "train_tiny.yaml"


def test_a_demo_ignoring_policy_scores_the_same_with_any_demo(reaching_demos: Path) -> None:
    """inner_lr 0: adaptation changes nothing, so own and other demo give identical errors."""
    config = MilConfig.load(CONFIG)
    config.maml.inner_lr = 0.0
    torch.manual_seed(0)
    method = build_method(config)
    dataset = load_dataset(reaching_demos, config.data, progress=False)
    sampler = MetaBatchSampler(dataset, range(4), meta_batch=3, seed=0)
    d = diagnose.diagnose(method, sampler, batches=1)
    assert d.tasks == 3 and len(d.error_own_demo) == config.data.horizon
    assert d.error_own_demo == d.error_other_demo
    assert all(v > 0 for v in d.expert_action_size)
    # An adapting policy does depend on which demo it saw.
    config.maml.inner_lr = 0.05
    adapting = build_method(config)
    adapting.module.load_state_dict(method.module.state_dict())
    d2 = diagnose.diagnose(adapting, MetaBatchSampler(dataset, range(4), meta_batch=3, seed=0), batches=1)
    assert d2.error_own_demo != d2.error_other_demo
    peaks = d2.softmax_peak
    assert peaks is not None and len(peaks) == config.network.conv[-1].filters
    assert all(d2.softmax_uniform <= p <= 1.0 for p in peaks)
    assert d2.fc_widths == config.network.fc and all(
        0 <= n <= w for n, w in zip(d2.inactive_units, d2.fc_widths, strict=True)
    )
    with torch.no_grad():  # switch every unit of the first FC layer off: all are reported dead
        adapting.module.fcs[0].bias.fill_(-1e3)
    d3 = diagnose.diagnose(adapting, MetaBatchSampler(dataset, range(4), meta_batch=3, seed=0), batches=1)
    assert d3.inactive_units[0] == config.network.fc[0]


def test_cli_reports_and_writes_json_and_refuses_bad_input(reaching_demos: Path, tmp_path: Path, capsys) -> None:
    config = MilConfig.load(CONFIG)
    save_checkpoint(tmp_path / "ckpt", build_method(config).module.state_dict(), config)
    out = tmp_path / "d.json"
    argv = [
        "--checkpoint",
        str(tmp_path / "ckpt"),
        "--demos",
        str(reaching_demos),
        "--split",
        "train",
        "--json",
        str(out),
    ]
    assert diagnose.main(argv) == 0
    report = capsys.readouterr().out
    assert "own demo lowers the error by" in report and "spatial softmax peak" in report and "never positive" in report
    assert json.loads(out.read_text())["tasks"] > 0
    assert diagnose.main(["--checkpoint", str(tmp_path / "missing"), "--demos", str(reaching_demos)]) == 2
    assert "does not exist" in capsys.readouterr().err
    config.method = "contextual"
    save_checkpoint(tmp_path / "ctx", build_method(config).module.state_dict(), config)
    assert diagnose.main(["--checkpoint", str(tmp_path / "ctx"), "--demos", str(reaching_demos)]) == 2
    assert "needs a MIL checkpoint" in capsys.readouterr().err


def test_target_error_is_the_mean_distance_to_the_demonstrated_target(reaching_demos: Path) -> None:
    """A target head fixed at one point p: the reported error is the mean |p - demo target| (m)."""
    config = MilConfig.load(CONFIG)
    config.network.predict_target = True
    config.maml.inner_lr = 0.0  # adaptation changes nothing: own and other demo give the same error
    method = build_method(config)
    p = torch.tensor([0.05, -0.1])
    with torch.no_grad():
        method.module.target_head.weight.zero_()
        method.module.target_head.bias.copy_(p)
    dataset = load_dataset(reaching_demos, config.data, progress=False)
    d = diagnose.diagnose(method, MetaBatchSampler(dataset, range(4), meta_batch=3, seed=0), batches=2)
    sampler = MetaBatchSampler(dataset, range(4), meta_batch=3, seed=0)  # the same evaluation demos
    distances = [(sampler.load(sampler.sample_indices())[1].targets - p).norm(dim=-1).mean() for _ in range(2)]
    assert d.target_error_own_demo is not None and d.target_error_own_demo > 0.01
    assert abs(d.target_error_own_demo - float(torch.stack(distances).mean())) < 1e-4
    assert d.target_error_own_demo == d.target_error_other_demo
    # No adaptation: the unadapted error is the same; the fit is measured on the adaptation demos.
    assert d.target_error_unadapted == d.target_error_own_demo
    sampler = MetaBatchSampler(dataset, range(4), meta_batch=3, seed=0)
    fit = [(sampler.load(sampler.sample_indices())[0].targets - p).norm(dim=-1).mean() for _ in range(2)]
    assert d.target_error_demo_fit is not None and abs(d.target_error_demo_fit - float(torch.stack(fit).mean())) < 1e-4
    assert "target position error" in diagnose.format_report(d) and "before adaptation" in diagnose.format_report(d)
    assert "nothing transfers" not in diagnose.format_report(d)  # no adaptation: the fit is no better
    fits_only = dataclasses.replace(d, target_error_demo_fit=0.5 * d.target_error_own_demo)
    assert "nothing transfers" in diagnose.format_report(fits_only)
    transfers = dataclasses.replace(fits_only, target_error_own_demo=0.6 * d.target_error_other_demo)
    assert "nothing transfers" not in diagnose.format_report(transfers)
    # Without a target head there is nothing to report.
    assert diagnose.diagnose(build_method(MilConfig.load(CONFIG)), sampler, batches=1).target_error_own_demo is None
