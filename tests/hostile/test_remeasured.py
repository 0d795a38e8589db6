"""A runner's re-measurement file comes with pull requests: a broken one is named by line in
validate and, met by a profile, kept aside rather than failing it; values that are not timings
are never used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tango_ci.profiling.noise import remeasure, remeasured_path
from tango_ci.spec import load_runner
from tests.pipeline_helpers import template_repo
from tests.runners.test_noise import _held


def test_validate_names_the_line_of_a_broken_re_measurement_file(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    template_repo(root)
    folder = root / "runners" / "local-cpu" / "latency"
    folder.mkdir(parents=True)
    good = json.dumps({"id": "00000000000000aa", "p50_ms": 1.0})
    (folder / "onnxruntime-fp32.remeasured.jsonl").write_text(f"{good}\n[1, 2]\n{good}\n")
    check = subprocess.run(
        [sys.executable, "-m", "tango_ci", "validate"], cwd=root, capture_output=True, text=True
    )
    assert check.returncode == 1
    assert check.stdout.splitlines() == [
        "runners/local-cpu/latency/onnxruntime-fp32.remeasured.jsonl:2:1: not a measurement record"
    ]


def test_a_broken_re_measurement_file_is_kept_aside_not_fatal(tmp_path: Path) -> None:
    """A broken file (a bad merge, say) must not throw away the profile after an hour of
    measuring: it is kept as .broken and the floor is measured again."""
    root = tmp_path / "repo"
    template_repo(root)
    runner = load_runner(root / "runners" / "local-cpu.yaml")
    path = remeasured_path(runner, "onnxruntime", "fp32")
    path.parent.mkdir(parents=True)
    path.write_text('{"id": "0000000000000000", "p50_ms": 1.0}\n[1, 2]\n{"id": "x"}\n')
    assert remeasure(runner, "onnxruntime", "fp32", _held(1), 1) == []  # not a network: failed
    assert path.with_name(path.name + ".broken").read_text().startswith('{"id": "0000')
    assert json.loads(path.read_text())["id"] == "0000000000000000"  # a fresh file
