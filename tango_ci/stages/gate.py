"""The gate stage: every check with its limit, value and verdict, in ``decision.json``."""

from __future__ import annotations

from tango_ci.compile import AUTO
from tango_ci.context import StageContext
from tango_ci.contracts import GateDecision
from tango_ci.plugins import get_task
from tango_ci.rundir import read_json, write_record
from tango_ci.spec import TargetSpec
from tango_ci.spec.enums import LATENCY_METRIC
from tango_ci.stages.compile import selected_targets
from tango_ci.stages.gate_challenger import challenger_checks


def _check(
    name: str, value: float | None, limit: float | None, *, higher_is_better: bool, unit: str = ""
) -> dict:
    if limit is None:
        return {"check": name, "value": value, "limit": None, "unit": unit, "status": "no limit"}
    passed = value is not None and (value >= limit if higher_is_better else value <= limit)
    return {
        "check": name,
        "value": value,
        "limit": limit,
        "unit": unit,
        "comparison": ">=" if higher_is_better else "<=",
        "status": "pass" if passed else "fail",
    }


def on_split(quality: dict) -> str:
    """`` on the test split``: where a quality check's numbers were measured."""
    split = quality.get("split", "val")
    return f" on the {'validation' if split == 'val' else split} split"


def target_checks(target: TargetSpec, metrics: dict) -> list[dict]:
    limits = target.constraints
    percentile = limits.latency_percentile
    quality = metrics["quality"]
    label, where = quality["label"], on_split(quality)
    return [
        _check(
            f"latency {percentile}",
            metrics["latency"][f"{percentile}_ms"],
            limits.latency_ms,
            higher_is_better=False,
            unit="ms",
        ),
        _check(
            "end-to-end latency p95 per image",
            (metrics.get("end_to_end") or {}).get("p95_ms"),
            limits.end_to_end_latency_ms,
            higher_is_better=False,
            unit="ms",
        ),
        _check(
            "peak memory",
            metrics["memory"]["peak_rss_mb"],
            limits.memory_mb,
            higher_is_better=False,
            unit="MiB",
        ),
        _check(
            "artifact size",
            metrics["size"]["artifact_mb"],
            limits.model_size_mb,
            higher_is_better=False,
            unit="MiB",
        ),
        _check(
            f"{label}{where}",
            quality["value"],
            limits.min_accuracy,
            higher_is_better=quality["higher_is_better"],
        ),
        _check(
            f"{label} drop vs PyTorch fp32{where}",
            quality["drop"],
            limits.max_accuracy_drop,
            higher_is_better=False,
        ),
    ]


def production_check(ctx: StageContext, target: TargetSpec, metrics: dict) -> dict:
    """The gate metric against the version of this target in the registry's prod stage.

    Higher is better for accuracy and mAP, lower for latency; the new model must beat
    production by ``gate.min_improvement``.
    """
    from tango_ci.exceptions import TangoError
    from tango_ci.registry import Registry, artifact_name
    from tango_ci.spec import find_repo_root

    metric = ctx.spec.gate.metric or metrics["quality"]["name"]
    name = artifact_name(ctx.spec.name, target.name)
    shown = (
        f"latency {target.constraints.latency_percentile} vs production"
        if metric == LATENCY_METRIC
        else f"{get_task(ctx.spec.task).metric_label(metric)} vs production"
        + on_split(metrics["quality"])
    )
    check = {"check": shown, "value": None, "limit": None}
    try:
        entry = Registry(find_repo_root(ctx.spec.folder)).resolve(f"{name}#prod")
    except TangoError as error:
        return check | {"status": "no production model", "note": str(error)}
    old = entry["record"].get("metrics", {})
    improvement = ctx.spec.gate.min_improvement
    if metric == LATENCY_METRIC:
        key = f"{target.constraints.latency_percentile}_ms"
        value, previous = metrics["latency"][key], old.get(key)
        limit = None if previous is None else previous - improvement
        passed = limit is not None and value <= limit
    else:
        value = metrics["task_metrics"].get(metric, metrics["quality"]["value"])
        previous = old.get(metric)
        limit = None if previous is None else previous + improvement
        passed = limit is not None and value >= limit
    if previous is None:
        return check | {
            "status": "no production model",
            "note": f"{name}@{entry['version']} records no {metric}",
        }
    return check | {
        "value": value,
        "limit": limit,
        "production": f"{name}@{entry['version']}",
        "comparison": "<=" if metric == LATENCY_METRIC else ">=",
        "status": "pass" if passed else "fail",
    }


def run(ctx: StageContext) -> None:
    ctx.run.require("gate", "bench", "benchmark results")
    targets = {}
    for target in selected_targets(ctx):
        path = ctx.run.stage_dir("bench") / target.name / "metrics.json"
        metrics = read_json(path)
        against = challenger_checks(ctx, target, metrics)
        if against is None:
            against = [production_check(ctx, target, metrics)]
            if ctx.spec.gate.challenger is not None:
                against[0]["note"] = (
                    f"{ctx.spec.gate.challenger.new_data} has no labelled images yet: compared "
                    "with production's recorded metric. " + against[0].get("note", "")
                ).strip()
        checks = target_checks(target, metrics) + against
        passed = all(c["status"] != "fail" for c in checks)
        targets[target.name] = {
            "passed": passed,
            "checks": checks,
            "engine": metrics["engine"],
            "precision": metrics["precision"],
            "auto": target.engine == AUTO,
        }
        ctx.recorder.input_file(f"{target.name}_metrics", path)
    decision = GateDecision(
        passed=all(t["passed"] for t in targets.values()),
        targets=targets,
        gate_metric=ctx.spec.gate.metric,
        min_improvement=ctx.spec.gate.min_improvement,
    )
    path = write_record(ctx.folder, decision)
    ctx.recorder.output_file("decision", path)
    ctx.recorder.summary.update(
        {"passed": decision.passed, "targets": {k: v["passed"] for k, v in targets.items()}}
    )
