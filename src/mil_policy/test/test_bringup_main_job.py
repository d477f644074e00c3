"""The main job end to end (``./mil place``): embedded checkpoint + shipped demo, sim + bridge + policy.

It checks that the job runs to the end of the horizon, scores the trial and writes the video; whether
this trial succeeds is the policy's business (docs/results.md measures the success rate).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mil_policy import bringup

pytestmark = pytest.mark.ros


def test_place_runs_adapts_scores_and_writes_a_video(
    domain_id: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = tmp_path / "rollout.gif"
    code = bringup.main(["--video", str(video), "--timeout", "120"])
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads(out[out.index("{") : out.rindex("}") + 1])
    assert result["state"] == "done" and result["step"] == result["horizon"] == 30
    assert isinstance(result["success"], bool) and result["sim"]["gripper_open"] is True
    assert result["success"] is result["sim"]["success"]  # the sim's own verdict, whichever it is
    assert ("SUCCESS" if result["success"] else "FAILURE") in out
    assert result["adapt_seconds"] > 0 and result["step_latency_p50_ms"] > 0
    assert "one-shot placing: " in out and video.stat().st_size > 10_000
    assert f"{100 * result['sim']['xy_distance_to_target']:.1f} cm from its centre" in out


def test_bad_demo_bag_is_reported(domain_id: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = bringup.main(["--demo-bag", str(tmp_path / "missing"), "--video", ""])
    assert code == 2
    assert "cannot read the demo's task" in capsys.readouterr().err


@pytest.mark.parametrize("verdict", [True, False])
def test_score_is_the_sims_verdict(verdict: bool) -> None:
    """The Trigger's success flag decides, not a key of the JSON details (a bug that printed FAILURE always)."""
    from std_srvs.srv import Trigger

    details = {"gripper_open": True, "item_in_target": verdict, "xy_distance_to_target": 0.01}
    response = Trigger.Response(success=verdict, message=json.dumps(details))
    scored = bringup.score_from_sim(response)
    assert scored["success"] is verdict and scored["sim"] == details
    result = {"state": "done", "adapt_seconds": 0.1, "step_latency_p50_ms": 2.0, "step_latency_p99_ms": 5.0}
    line = bringup.summary_line(result | scored)
    assert line.startswith("one-shot placing: " + ("SUCCESS" if verdict else "FAILURE")), line
