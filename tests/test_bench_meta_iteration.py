"""bench/bench_meta_iteration.py runs end to end (``--quick``, tiny config) so it cannot rot unnoticed.

Only the shape of the report is checked: timings on a shared CI machine are not assertable.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = """
method: mil
network: {image_width: 16, image_height: 12, state_dim: 3, action_dim: 2, predict_target: true,
          conv: [{filters: 4, kernel: 3, stride: 2}], fc: [8]}
maml: {meta_batch: 2, shots: 2, inner_steps: 1}
data: {horizon: 5, frames_per_demo: 3}
"""


def test_quick_bench_writes_both_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = ROOT / "bench" / "bench_meta_iteration.py"
    spec = importlib.util.spec_from_file_location("bench_meta_iteration", script)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    try:
        assert (
            bench.main(["--config", str(config), "--device", "cpu", "--quick", "--threads", "1", "--json", str(out)])
            == 0
        )
    finally:
        torch.set_num_threads(threads)
    table = capsys.readouterr().out
    assert "vmap" in table and "loop" in table and "act p99 ms" in table
    doc = json.loads(out.read_text())
    assert doc["quick"] is True and doc["machine"]["torch"] == torch.__version__
    rows = doc["results"]
    assert [(r["config"], r["device"], r["path"]) for r in rows] == [
        ("tiny.yaml", "cpu", "vmap"),
        ("tiny.yaml", "cpu", "loop"),
    ]
    for r in rows:
        assert r["s_per_iter"] > 0 and r["iters_per_s"] > 0 and len(r["samples_s"]) == 1
        assert r["adapt_s"] > 0 and 0 < r["act_p50_ms"] <= r["act_p99_ms"]
        assert (r["meta_batch"], r["shots"], r["frames"]) == (2, 2, 3)
