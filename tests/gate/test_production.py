"""The gate compares each target with its version in the registry's prod stage."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from tango_ci.registry import Registry
from tango_ci.spec import load_project
from tango_ci.stages.gate import production_check
from tests.conftest import git, write_project


def metrics(accuracy: float, p95: float) -> dict:
    return {
        "quality": {"name": "accuracy", "label": "accuracy", "value": accuracy},
        "task_metrics": {"accuracy": accuracy},
        "latency": {"p95_ms": p95},
    }


def test_the_gate_metric_must_beat_production(spec_repo: Path) -> None:
    path = write_project(spec_repo, "demo")
    git(spec_repo, "add", "-A")
    git(spec_repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "demo")
    spec = load_project(path)
    ctx = SimpleNamespace(spec=spec)
    target = spec.targets[0]

    check = production_check(ctx, target, metrics(0.9, 1.0))
    assert check["status"] == "no production model"
    assert "no artifact 'demo-cpu'" in check["note"]

    registry = Registry(spec_repo)
    registry.register(
        "demo-cpu",
        {
            "task": "classification",
            "architecture": "resnet-xs",
            "metrics": {"accuracy": 0.92, "p95_ms": 0.5},
        },
    )
    registry.promote("demo-cpu", "v1.0.0", push=False)
    worse = production_check(ctx, target, metrics(0.91, 1.0))
    assert (worse["status"], worse["limit"], worse["production"]) == (
        "fail",
        0.92,
        "demo-cpu@v1.0.0",
    )
    assert production_check(ctx, target, metrics(0.92, 1.0))["status"] == "pass"

    strict = SimpleNamespace(
        spec=SimpleNamespace(
            name=spec.name,
            folder=spec.folder,
            gate=SimpleNamespace(metric="latency_ms", min_improvement=0.1),
        )
    )
    assert production_check(strict, target, metrics(0.5, 0.45))["status"] == "fail"
    assert production_check(strict, target, metrics(0.5, 0.39))["status"] == "pass"
