"""Supernet projects end to end: one training, one subnet per target, refusals, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tango_ci import api
from tango_ci.rundir import read_json
from tests.latency.helpers import write_latency_model
from tests.supernet.helpers import foreign_runner, make_supernet_repo

pytestmark = pytest.mark.slow


def _tango(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tango_ci", *args], cwd=cwd, capture_output=True, text=True
    )


def test_one_supernet_gives_each_target_its_subnet(tmp_path: Path) -> None:
    project = make_supernet_repo(tmp_path / "repo")
    run = api.run(project).root
    assert (run / "search" / "supernet.json").is_file()
    assert not (run / "search" / "trials.json").exists()  # no trials: one training
    roomy = read_json(run / "specialise" / "roomy" / "result.json")
    small = read_json(run / "specialise" / "small" / "result.json")
    # the size budget of `small` rules out the larger subnets that `roomy` may take
    assert small["chosen"]["feasible"] and small["chosen"]["artifact_bytes"] <= 0.2 * 2**20
    # the registry keeps each target's own subnet as its architecture
    from tango_ci.gitops.runfolder import collect
    from tango_ci.rundir import RunDir

    targets = collect(RunDir(run))["targets"]
    for name in ("roomy", "small"):
        subnet = read_json(run / "specialise" / name / "model.json")["name"]
        assert targets[name]["architecture"] == subnet
    samples = read_json(run / "specialise" / "small" / "samples.json")
    assert any(not s["feasible"] for s in samples)  # the largest is over the size budget
    assert roomy["chosen"]["accuracy"] == max(
        s["accuracy"] for s in read_json(run / "specialise" / "roomy" / "samples.json")
    )
    for result in (roomy, small):
        assert result["latency_source"] == "measured"
    # each target deploys its own subnet: compile read it, bench measured it
    for target, result in (("roomy", roomy), ("small", small)):
        model = read_json(run / "specialise" / target / "model.json")
        assert model["shape"]["subnet"] == result["chosen"]["config"]
        metrics = read_json(run / "bench" / target / "metrics.json")
        assert metrics["quality"]["reference"] == pytest.approx(metrics["quality"]["reference"])
    compile_manifest = read_json(run / "compile" / "manifest.json")
    assert compile_manifest["inputs"]["onnx/small"]["path"] == "specialise/small/model.onnx"
    report = (run / "report" / "report.md").read_text()
    assert "Specialised subnet" in report and "**measured** for runner local-cpu" in report
    for name in ("roomy", "small"):  # each target's line names its own subnet
        subnet = read_json(run / "specialise" / name / "model.json")["name"]
        assert f"- **{name}** gets {subnet} (" in report
    assert (run / "report" / "specialise-small.png").is_file()


def test_a_target_whose_runner_is_elsewhere_is_not_timed_here(tmp_path: Path) -> None:
    project = make_supernet_repo(tmp_path / "repo", runner="arm-board")
    root = project.parent.parent
    foreign_runner(root)
    api.run(project, until="train")  # training runs anywhere
    result = _tango(["specialise", "projects/tiny", "--target", "roomy"], root)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "runner arm-board is not this host" in errors[0]
    assert "tango runner profile runners/arm-board.yaml" in errors[0]
    run = (root / "runs" / "tiny" / "latest").resolve()
    assert not (run / "specialise" / "roomy" / "samples.json").exists()
    # with arm-board's latency model, the target's latency is predicted, never timed here: the
    # model says a p50 of 400 ms plus a little per MAC (p95: 1.5x), where these subnets run in
    # well under 1 ms
    write_latency_model(root / "runners" / "arm-board.yaml", overhead_ms=400.0, per_mmac_ms=1.0)
    result = _tango(["specialise", "projects/tiny", "--target", "roomy"], root)
    assert result.returncode == 0, result.stderr
    chosen = read_json(run / "specialise" / "roomy" / "result.json")
    assert chosen["latency_source"] == "predicted" and "arm-board" in chosen["latency_source_why"]
    samples = read_json(run / "specialise" / "roomy" / "samples.json")
    assert all(600.0 <= s["latency_ms"] < 1000.0 for s in samples)
    assert {s["latency_source"] for s in samples} == {"predicted"}
    assert "predicted" in result.stderr


def test_killed_supernet_training_resumes_without_losing_epochs(tmp_path: Path) -> None:
    project = make_supernet_repo(tmp_path / "repo", per_class=16, epochs=8)
    root = project.parent.parent
    api.run(project, until="search")
    run = (root / "runs" / "tiny" / "latest").resolve()
    last = run / "train" / "checkpoints" / "last.pt"

    def epochs_done() -> int:
        try:
            return torch.load(last, weights_only=True)["epoch"] + 1 if last.exists() else 0
        except Exception:  # being replaced right now
            return 0

    train = subprocess.Popen(
        [sys.executable, "-m", "tango_ci", "train", "projects/tiny"],
        cwd=root,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while epochs_done() < 2:
        assert train.poll() is None, train.stderr.read() if train.stderr else ""
        assert time.time() < deadline
        time.sleep(0.05)
    train.send_signal(signal.SIGKILL)
    train.wait()
    kept = torch.load(last, weights_only=True)["history"]
    assert 2 <= len(kept) < 8
    resumed = _tango(["train", "projects/tiny"], root)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed supernet training at epoch {len(kept) + 1}" in resumed.stderr
    history = read_json(run / "train" / "history.json")
    assert [h["epoch"] for h in history] == list(range(8))
    assert history[: len(kept)] == kept
