"""A target whose runner is not this host (and has no latency model) refuses the search in one
line, before any candidate is built."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tango_ci import api
from tests.pipeline_helpers import make_repo
from tests.runners.test_latency_source import elsewhere


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
