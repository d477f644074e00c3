"""bench/bench_recorder.py runs end to end (``--quick``) so it cannot rot unnoticed.

Only the shape of the report is checked, and that nothing published went missing on a 2 s, 10 Hz run:
throughput numbers on a shared machine are not assertable.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.ros


def test_quick_bench_reports_every_stream(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # the publisher process (spawn) imports it by name
    bench = importlib.import_module("bench_recorder")
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--image", "noise", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {r["topic"]: r for r in result["rows"]}
    assert set(rows) == {"/camera/image_raw", "/ee_pose", "/ee_cmd_vel", "/joint_states"}
    for r in rows.values():
        assert r["published"] > 0 and r["written"] == r["received"] - r["dropped_queue"]
    assert result["bag_bytes"] > 0 and "published" in capsys.readouterr().out
