"""Baselines train with the winner's budget, are timed on every target like search candidates,
and sit beside the winner in the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from tango_ci import api
from tango_ci.rundir import read_json
from tests.pipeline_helpers import make_repo

pytestmark = pytest.mark.slow


def test_baselines_are_trained_measured_and_reported(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "repo", per_class=8, trials=1, epochs=2, extra_targets="")
    text = (project / "project.yaml").read_text()
    (project / "project.yaml").write_text(
        text.replace(
            "  levels: [xs]\n", "  levels: [xs]\n  baselines: [{family: mobilenetv3, level: xs}]\n"
        )
    )
    run = api.run(project)
    train = run.root / "train"
    written = read_json(train / "baselines.json")
    winner = read_json(train / "metrics.json")["config"]
    assert written["config"] == winner  # the winner's budget and hyper-parameters
    [entry] = written["baselines"]
    assert (entry["name"], entry["family"], entry["level"]) == (
        "mobilenetv3-xs",
        "mobilenetv3",
        "xs",
    )
    assert entry["epochs_run"] == 2 and 0.0 <= entry["val_accuracy"] <= 1.0
    assert entry["parameters"] > 0 and entry["architecture"]
    assert entry["latency_ms"]["cpu-fp32"] > 0 and written["percentiles"] == {"cpu-fp32": "p95"}
    assert entry["latency_source"] == {"cpu-fp32": "measured"}
    assert entry["fits_budgets"] is True and entry["violations"] == []
    assert not (train / "baselines").exists()  # checkpoints of finished baselines are gone
    manifest = read_json(train / "manifest.json")
    assert "baselines" in manifest["summary"]
    report = (run.root / "report" / "report.md").read_text()
    assert "Latency sources: `cpu-fp32` **measured** (runner check passed here)." in report
    table = report[report.index("### Against baselines") :].splitlines()
    assert table[4].startswith("| network | parameters | validation accuracy | cpu-fp32 p95 ms")
    assert table[6].startswith("| **resnet-xs** (winner) |") and table[6].endswith("| yes |")
    assert table[7].startswith("| mobilenetv3-xs |")
