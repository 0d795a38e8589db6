"""A run's summary table in a CI log (not a terminal) is not cut at 80 columns."""

from __future__ import annotations

import os
import subprocess
import sys

SUMMARY = """
from tango_ci.cli_common import print_summary
latency = {"p50_ms": 0.134, "p95_ms": 0.151}
target = {"engine": "onnxruntime", "precision": "fp32", "quality_name": "accuracy",
          "quality": 0.9383, "latency": latency, "passed": False,
          "failed": ["latency_ms", "min_accuracy"]}
print_summary({"run": "20261129-050719-5fec", "path": "runs/x/20261129-050719-5fec",
               "report": None, "targets": {"x86-auto-long-target-name": target}})
"""


def test_the_summary_table_keeps_whole_cells_in_a_log() -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = subprocess.run(
        [sys.executable, "-c", SUMMARY], capture_output=True, text=True, env=env, check=True
    )
    rows = [line for line in result.stderr.splitlines() if "x86-auto-long-target-name" in line]
    assert len(rows) == 1, result.stderr
    for cell in ("onnxruntime", "accuracy 0.9383", "fail latency_ms, min_accuracy"):
        assert cell in rows[0], result.stderr
    assert "…" not in result.stderr
