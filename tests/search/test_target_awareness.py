"""A target whose runner is not this host is predicted from the runner's latency model, never
timed here; with no model it refuses the search in one line, before any candidate is built."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tango_ci import api
from tango_ci.rundir import read_json
from tests.latency.helpers import write_latency_model
from tests.pipeline_helpers import make_repo
from tests.runners.test_latency_source import elsewhere
from tests.supernet.helpers import FOREIGN_TARGET, foreign_runner


def test_search_refuses_a_target_it_cannot_measure_here(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    project = make_repo(root, extra_targets="")
    elsewhere(root)
    api.run(project, until="data")
    result = subprocess.run(
        [sys.executable, "-m", "tango_ci", "search", "projects/tiny"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [line] = [x for x in result.stderr.splitlines() if "runner local-cpu" in x]
    assert "target cpu-fp32: runner local-cpu is not this host" in line
    assert "tango runner profile runners/local-cpu.yaml" in line
    search = root / "runs" / "tiny" / "latest" / "search"
    assert not (search / "candidates").exists()
    assert not (search / "study.db").exists()  # no study, so no trial
    assert not (search / "trials.json").exists()


def test_search_predicts_a_target_whose_runner_has_a_latency_model(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    project = make_repo(root, trials=1, search_epochs=1, extra_targets=FOREIGN_TARGET)
    foreign_runner(root)
    # arm-board's model says a p50 of 400 ms and more (p95: 1.5x); the candidate runs here in
    # well under 10 ms
    write_latency_model(root / "runners" / "arm-board.yaml", overhead_ms=400.0, per_mmac_ms=1.0)
    api.run(project, until="search")
    search = root / "runs" / "tiny" / "latest" / "search"
    [trial] = read_json(search / "trials.json")
    assert trial["latency_source"] == {"cpu-fp32": "measured", "pi": "predicted"}
    assert 600.0 <= trial["latency_ms"]["pi"] < 1000.0  # the p95: 1.5 x (400 + a little)
    assert trial["latency_ms"]["cpu-fp32"] < 100.0
    sources = read_json(search / "manifest.json")["summary"]["latency_sources"]
    assert sources["pi"]["source"] == "predicted" and "arm-board" in sources["pi"]["why"]
    assert sources["cpu-fp32"]["source"] == "measured"
