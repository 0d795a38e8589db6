"""The gate stage: every check with its limit, value and verdict, in ``decision.json``."""

from __future__ import annotations

from tango_ci.compile.stage import selected_targets
from tango_ci.rundir import read_json, write_json
from tango_ci.spec import TargetSpec
from tango_ci.stage import StageContext


def _check(name: str, value: float | None, limit: float | None, *, higher_is_better: bool,
           unit: str = "") -> dict:
    if limit is None:
        return {"check": name, "value": value, "limit": None, "unit": unit, "status": "no limit"}
    passed = value is not None and (value >= limit if higher_is_better else value <= limit)
    return {"check": name, "value": value, "limit": limit, "unit": unit,
            "comparison": ">=" if higher_is_better else "<=",
            "status": "pass" if passed else "fail"}


def target_checks(target: TargetSpec, metrics: dict) -> list[dict]:
    limits = target.constraints
    percentile = limits.latency_percentile
    quality = metrics.get("quality_name", "accuracy")
    return [
        _check(f"latency {percentile}", metrics["latency"][f"{percentile}_ms"], limits.latency_ms,
               higher_is_better=False, unit="ms"),
        _check("peak memory", metrics["memory"]["peak_rss_mb"], limits.memory_mb,
               higher_is_better=False, unit="MiB"),
        _check("artifact size", metrics["size"]["artifact_mb"], limits.model_size_mb,
               higher_is_better=False, unit="MiB"),
        _check(quality, metrics["accuracy"]["accuracy"], limits.min_accuracy,
               higher_is_better=True),
        _check(f"{quality} drop vs PyTorch fp32", metrics["accuracy_drop"],
               limits.max_accuracy_drop, higher_is_better=False),
    ]


def production_check(ctx: StageContext) -> dict:
    """Compare with the registered production model (the registry comes in a later release)."""
    return {"check": f"{ctx.spec.gate.metric} vs production", "status": "no production model",
            "value": None, "limit": None,
            "note": "no production model is registered, so there is nothing to beat"}


def run(ctx: StageContext) -> None:
    ctx.run.require("gate", "bench", "benchmark results")
    targets = {}
    for target in selected_targets(ctx):
        path = ctx.run.stage_dir("bench") / target.name / "metrics.json"
        metrics = read_json(path)
        checks = target_checks(target, metrics) + [production_check(ctx)]
        passed = all(c["status"] != "fail" for c in checks)
        targets[target.name] = {"passed": passed, "checks": checks,
                                "engine": metrics["engine"], "precision": metrics["precision"],
                                "auto": target.engine == "auto"}
        ctx.recorder.input_file(f"{target.name}_metrics", path)
    decision = {"passed": all(t["passed"] for t in targets.values()), "targets": targets,
                "gate_metric": ctx.spec.gate.metric,
                "min_improvement": ctx.spec.gate.min_improvement}
    write_json(ctx.folder / "decision.json", decision)
    ctx.recorder.output_file("decision", ctx.folder / "decision.json")
    ctx.recorder.summary.update({"passed": decision["passed"],
                                 "targets": {k: v["passed"] for k, v in targets.items()}})
