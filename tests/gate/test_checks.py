"""The gate refuses a target whose quality drop exceeds its limit, whatever the task, and names
the split the quality was measured on."""

from __future__ import annotations

from tango_ci.spec.models import Constraints, TargetSpec
from tango_ci.stages.gate import target_checks


def _metrics(quality_name: str, value: float, drop: float, split: str = "test") -> dict:
    return {
        "latency": {"p95_ms": 1.0},
        "memory": {"peak_rss_mb": 100.0},
        "size": {"artifact_mb": 1.0},
        "quality": {
            "name": quality_name.lower(),
            "label": quality_name,
            "value": value,
            "reference": value + drop,
            "drop": drop,
            "higher_is_better": True,
            "split": split,
        },
    }


def test_int8_detection_target_over_its_drop_limit_fails() -> None:
    target = TargetSpec(
        name="det-int8",
        runner="local-cpu",
        engine="onnxruntime",
        precision="int8",
        constraints=Constraints(min_accuracy=0.5, max_accuracy_drop=0.01),
    )
    checks = {c["check"]: c for c in target_checks(target, _metrics("mAP50", 0.6, 0.04))}
    assert checks["mAP50 on the test split"]["status"] == "pass"
    assert checks["mAP50 drop vs PyTorch fp32 on the test split"] == {
        "check": "mAP50 drop vs PyTorch fp32 on the test split",
        "value": 0.04,
        "limit": 0.01,
        "unit": "",
        "comparison": "<=",
        "status": "fail",
    }
    within = {c["check"]: c for c in target_checks(target, _metrics("mAP50", 0.6, 0.005))}
    assert within["mAP50 drop vs PyTorch fp32 on the test split"]["status"] == "pass"


def test_budgets_without_a_limit_never_fail() -> None:
    target = TargetSpec(name="t", runner="local-cpu", engine="onnxruntime")
    statuses = {
        c["check"]: c["status"] for c in target_checks(target, _metrics("accuracy", 0.1, 0.0))
    }
    assert statuses["latency p95"] == statuses["peak memory"] == "no limit"
    assert statuses["accuracy on the test split"] == "no limit"


def test_without_a_test_split_the_checks_name_the_validation_split() -> None:
    target = TargetSpec(name="t", runner="local-cpu", engine="onnxruntime")
    names = [c["check"] for c in target_checks(target, _metrics("accuracy", 0.9, 0.0, "val"))]
    assert names[-2:] == [
        "accuracy on the validation split",
        "accuracy drop vs PyTorch fp32 on the validation split",
    ]


def test_the_end_to_end_budget_is_checked_and_a_missing_measurement_fails_it() -> None:
    check = "end-to-end latency p95 per image"
    target = TargetSpec(
        name="t",
        runner="local-cpu",
        engine="onnxruntime",
        constraints=Constraints(end_to_end_latency_ms=5.0),
    )
    metrics = _metrics("accuracy", 0.9, 0.0)
    slow = {c["check"]: c for c in target_checks(target, metrics | {"end_to_end": {"p95_ms": 6.5}})}
    assert (slow[check]["status"], slow[check]["value"], slow[check]["unit"]) == ("fail", 6.5, "ms")
    fast = {c["check"]: c for c in target_checks(target, metrics | {"end_to_end": {"p95_ms": 4.0}})}
    assert fast[check]["status"] == "pass"
    unmeasured = {c["check"]: c for c in target_checks(target, metrics)}
    assert unmeasured[check]["status"] == "fail"  # a budget nobody measured is not met
