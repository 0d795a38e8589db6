"""`tango runner profile`: refused off the device; killed, it continues from what it measured,
and what it writes is a model `tango validate` accepts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tango_ci import api
from tango_ci.exceptions import TangoError
from tango_ci.latency import load_model
from tango_ci.profiling.profile import ProfileOptions
from tests.pipeline_helpers import template_repo
from tests.runners.test_latency_source import elsewhere

PROFILE = [
    "runner",
    "profile",
    "runners/local-cpu.yaml",
    "--engine",
    "onnxruntime",
    "--precision",
    "fp32",
    "--networks",
    "20",
    "--blocks",
    "4",
    "--no-yolo",
]


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


def test_profile_is_refused_on_another_host(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    template_repo(root)
    runner = elsewhere(root)
    with pytest.raises(TangoError) as refused:
        api.profile_runner(runner, ProfileOptions(networks=2, blocks=0))
    message = str(refused.value)
    assert "\n" not in message and "this host is not runner local-cpu" in message
    assert not (root / "runners" / "local-cpu" / "latency").exists()


@pytest.mark.slow
def test_a_killed_profile_continues_where_it_stopped(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    template_repo(root)
    folder = root / "runners" / "local-cpu" / "latency"
    records = folder / "onnxruntime-fp32.measurements.jsonl"
    command = [sys.executable, "-m", "tango_ci", *PROFILE]
    first = subprocess.Popen(
        command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.poll() is None:
        if records.exists() and len(_ids(records)) >= 5:
            break
        time.sleep(0.2)
    assert first.poll() is None, "the profile ended before it could be killed"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    before = records.read_text().splitlines()
    measured = [json.loads(line) for line in before[:-1]]  # the last may have been cut
    assert len(measured) >= 4 and not (folder / "onnxruntime-fp32.json").exists()

    rerun = subprocess.run(command, cwd=root, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    after = [json.loads(line) for line in records.read_text().splitlines() if line.strip()]
    ids = [r["id"] for r in after]
    assert len(ids) == len(set(ids)) == 24  # every sample once: none measured twice
    kept = {r["id"]: r["p50_ms"] for r in after}
    assert all(kept[r["id"]] == r["p50_ms"] for r in measured)  # earlier work kept as it was

    model = load_model(folder / "onnxruntime-fp32.json")
    assert (model.runner, model.engine, model.precision) == ("local-cpu", "onnxruntime", "fp32")
    counts = model.metadata["samples"]
    assert counts["networks_fitted"] + counts["networks_held_out"] == 20
    assert counts["blocks"] == 4 and model.metadata["heldout"]["count"] >= 1
    report = (folder / "report.md").read_text()
    assert report.count("| flops-linear (baseline) |") == 1
    # the device timed again: every held-out network (fewer than 20), each in a fresh process
    spread = model.metadata["noise_floor"]
    assert spread["count"] == counts["networks_held_out"]
    assert 0 <= spread["within_5"] <= spread["within_10"] <= 1
    again = _ids(folder / "onnxruntime-fp32.remeasured.jsonl")
    assert len(again) == len(set(again)) == spread["count"]
    assert set(again) <= {r["id"] for r in after}
    assert report.count("| the device again (noise floor) |") == 1
    assert "timed again:" in rerun.stderr
    assert (folder / "onnxruntime-fp32.png").stat().st_size > 1000
    assert "within ±10%" in rerun.stderr
    check = subprocess.run(
        [sys.executable, "-m", "tango_ci", "validate"], cwd=root, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
