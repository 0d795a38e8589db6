"""The gate verdict a bundle records comes from a run folder, which may arrive as an artifact:
a decision.json of another shape is no verdict, never a traceback, and check names are cut."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tango_ci.deploy import gate_verdict

NONE = {"passed": None, "failed": []}


@pytest.mark.parametrize(
    "decision",
    [
        [],
        {"targets": []},
        {"targets": {"cpu": "yes"}},
        {"targets": {"cpu": {"passed": "true", "checks": []}}},
        {"targets": {"cpu": {"passed": 1, "checks": []}}},
    ],
)
def test_a_decision_of_another_shape_is_no_verdict(tmp_path: Path, decision) -> None:
    (tmp_path / "gate").mkdir()
    (tmp_path / "gate" / "decision.json").write_text(json.dumps(decision))
    run = SimpleNamespace(stage_dir=lambda stage: tmp_path / stage)
    assert gate_verdict(run, "cpu") == NONE


def test_odd_checks_are_skipped_and_names_cut(tmp_path: Path) -> None:
    checks = ["x", None, {"check": "\x1b[2J" + "a" * 500, "status": "fail"}] + [
        {"check": f"c{i}", "status": "fail"} for i in range(40)
    ]
    (tmp_path / "gate").mkdir()
    decision = {"targets": {"cpu": {"passed": False, "checks": checks}}}
    (tmp_path / "gate" / "decision.json").write_text(json.dumps(decision))
    verdict = gate_verdict(SimpleNamespace(stage_dir=lambda stage: tmp_path / stage), "cpu")
    assert verdict["passed"] is False and len(verdict["failed"]) == 20
    first = verdict["failed"][0]
    assert len(first) == 100 and "\x1b" not in first and first.startswith("\\x1b[2J")
