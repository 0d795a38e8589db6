"""The API's own rules: when a run fails (the CLI's exit code comes from here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tango_ci import api


def summary(passed: bool | None, targets: dict) -> dict:
    return {"run": "r", "path": "runs/x/r", "report": None, "passed": passed, "targets": targets}


def test_a_failed_target_fails_the_run() -> None:
    failed = summary(
        False,
        {
            "cpu": {"passed": True, "failed": []},
            "gpu": {"passed": False, "failed": ["latency", "accuracy"]},
        },
    )
    with pytest.raises(api.GateFailed) as caught:
        api.check_gate(failed)
    assert caught.value.message == "gate failed (gpu: latency, accuracy)"


@pytest.mark.parametrize("passed", [True, None])  # None: stopped before the gate
def test_a_passed_or_unjudged_run_does_not_fail(passed: bool | None) -> None:
    api.check_gate(summary(passed, {"cpu": {"passed": passed, "failed": []}}))


def test_a_run_is_summarised_in_its_task_metric(tmp_path: Path) -> None:
    from tango_ci.rundir import RunDir, write_json

    root = tmp_path / "runs" / "x" / "r1"
    write_json(root / "spec.json", {})
    write_json(
        root / "gate" / "decision.json",
        {
            "passed": False,
            "targets": {
                "cpu": {
                    "engine": "onnxruntime",
                    "precision": "fp32",
                    "passed": False,
                    "checks": [
                        {"check": "latency p95", "status": "fail"},
                        {"check": "quality drop", "status": "pass"},
                    ],
                }
            },
        },
    )
    write_json(
        root / "bench" / "cpu" / "metrics.json",
        {
            "engine": "onnxruntime",
            "precision": "fp32",
            "latency": {"p50_ms": 1.0, "p95_ms": 2.0},
            "quality": {"name": "map50", "label": "mAP50", "value": 0.3, "reference": 0.31},
        },
    )
    result = api.run_summary(RunDir(root))
    assert result["targets"]["cpu"] | {"latency": None} == {
        "engine": "onnxruntime",
        "precision": "fp32",
        "passed": False,
        "quality": 0.3,
        "quality_name": "mAP50",
        "latency": None,
        "failed": ["latency p95"],
    }
    with pytest.raises(api.GateFailed, match=r"^gate failed \(cpu: latency p95\)$"):
        api.check_gate(result)
