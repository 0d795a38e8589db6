"""Target awareness: build and time a candidate on every target, before training it (the
search) or beside the winner (the train stage's baselines).

A target is timed here only when its latency source (:mod:`tango_ci.runners.latency_source`)
says this host is its runner; any other target's latency is predicted from its runner's latency
model (nothing is built for it), and a target with neither is refused before anything is built.
It lives in ``bench`` so that both ``search`` and ``train`` can use it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from tango_ci.bench.latency import instability, measure_latency
from tango_ci.compile import (
    AUTO,
    BuildRequest,
    auto_candidates,
    capabilities,
    check_request,
    get_compiler,
)
from tango_ci.runners.latency_source import LatencySource, latency_model, latency_source
from tango_ci.spec import ProjectSpec, TargetSpec

# Quick measurements: enough to tell a 2 ms model from a 20 ms one, in a few seconds.
QUICK: dict[str, Any] = {
    "max_seconds": 3.0,
    "min_repeats": 50,
    "min_seconds": 0.3,
    "target_ci": 0.05,
}


# A second, longer measurement before a candidate is rejected on a doubtful latency: a p95 taken
# in 3 s on a busy machine rejected densenet-xs at 3.8 ms (CV 321%) whose quiet p95 is 0.26 ms.
SECOND_LOOK: dict[str, Any] = {
    "max_seconds": 12.0,
    "min_repeats": 300,
    "min_seconds": 2.0,
    "target_ci": 0.02,
}
NEAR_LIMIT = 1.5  # a latency within this factor of its limit is measured again


def second_look_reason(latency: dict, percentile: str, limit: float | None) -> str | None:
    """Why a latency over its budget deserves a longer measurement before the candidate is
    rejected (unstable, or near the limit), or None when the first one is conclusive."""
    value = latency[f"{percentile}_ms"]
    if limit is None or value <= limit:
        return None
    unstable = instability(latency)
    if unstable:
        return f"unstable first measurement: {unstable}"
    if value <= limit * NEAR_LIMIT:
        return f"{percentile} {value:.3g} ms is within {NEAR_LIMIT:g}x of the {limit:g} ms limit"
    return None


def budget_violations(
    target: TargetSpec, *, latency: dict, artifact_bytes: int, peak_rss_mb: float | None
) -> list[dict]:
    """Each budget of ``target`` the measurement breaks, with value and limit."""
    limits = target.constraints
    checks = [
        ("latency_ms", latency[f"{limits.latency_percentile}_ms"], limits.latency_ms),
        ("model_size_mb", artifact_bytes / 2**20, limits.model_size_mb),
        ("memory_mb", peak_rss_mb, limits.memory_mb),
    ]
    found = [
        {"budget": name, "value": value, "limit": limit, "excess": (value - limit) / limit}
        for name, value, limit in checks
        if limit is not None and value is not None and value > limit
    ]
    for violation in found:  # a busy host, not the network, may have broken it
        if violation["budget"] == "latency_ms" and latency.get("unstable"):
            violation["unstable_reason"] = latency.get("unstable_reason")
            violation["p50_ms"] = latency.get("p50_ms")
    return found


def busy_host_note(violation: dict) -> str | None:
    """What to add to a latency violation that comes from the tail of an unstable timing
    whose p50 is within the budget (the host was busy, not the network slow); else None."""
    p50, reason = violation.get("p50_ms"), violation.get("unstable_reason")
    if not (reason and isinstance(p50, int | float) and p50 <= violation["limit"]):
        return None
    return (
        f", but its p50 was {p50:.3g} ms: the tail comes from a timing made while this host "
        f"was busy ({reason})"
    )


def _concrete(target: TargetSpec, runner) -> list[TargetSpec]:
    """What to time for a target. ``auto`` tries its candidates, except untuned TVM builds,
    which are slow to build and never the fastest on CPUs (unless TVM is all there is)."""
    if target.engine != AUTO:
        return [target]
    candidates = auto_candidates(target, runner)
    quick = [c for c in candidates if capabilities(c.engine).quick_build]
    return quick or candidates


def build_and_measure(
    target: TargetSpec,
    runner,
    onnx_path: Path,
    model_dir: Path | None,
    artifact: Path,
    size: int,
    calibration: np.ndarray,
    settings: dict[str, Any],
) -> tuple[dict, dict]:
    """Build ``onnx_path`` for ``target`` into ``artifact`` and time it in a fresh process:
    the build's manifest fields and the latency statistics (without the raw samples)."""
    built = get_compiler(target.engine).build(
        BuildRequest(
            onnx_path=onnx_path,
            out_dir=artifact,
            target=target,
            runner=runner,
            calibration=calibration,
            options={"model_dir": model_dir} if model_dir is not None else {},
        )
    )
    latency = measure_latency(
        artifact, batch=target.batch, size=size, threads=runner.threads, **settings
    )
    latency.pop("samples_ms")
    return built, latency


def _measure_one(
    target: TargetSpec,
    runner,
    onnx_path: Path,
    model_dir: Path,
    workdir: Path,
    size: int,
    calibration: np.ndarray,
    settings: dict[str, Any],
) -> dict:
    artifact = workdir / f"{target.name}-{target.engine}-{target.precision}"
    built, latency = build_and_measure(
        target, runner, onnx_path, model_dir, artifact, size, calibration, settings
    )
    return {
        "engine": target.engine,
        "precision": target.precision,
        "latency": latency,
        "artifact_bytes": built["bytes"],
        "peak_rss_mb": latency["peak_rss_mb"],
        "artifact": artifact,
    }


def _second_look(best: dict, target: TargetSpec, runner, size: int) -> None:
    """Measure ``best`` again, longer, when its first latency is a doubtful rejection."""
    percentile = target.constraints.latency_percentile
    reason = second_look_reason(best["latency"], percentile, target.constraints.latency_ms)
    if reason is None:
        return
    first = best["latency"][f"{percentile}_ms"]
    latency = measure_latency(
        best["artifact"], batch=target.batch, size=size, threads=runner.threads, **SECOND_LOOK
    )
    latency.pop("samples_ms")
    best["latency"] = latency
    best["second_look"] = {"reason": reason, f"first_{percentile}_ms": first}


def latency_sources(spec: ProjectSpec) -> dict[str, LatencySource]:
    """Each target's latency source, refusing (one line) a target whose latency can neither be
    measured on this host nor predicted by its runner's latency model."""
    return {t.name: latency_source(t, spec.runners[t.runner]) for t in spec.targets}


def predict_candidate(target: TargetSpec, runner, onnx_path: Path, size: int) -> dict:
    """The target's latency predicted by its runner's latency model (the fastest of the
    builds ``engine: auto`` could make that have one); nothing is built or timed. The size
    is the ONNX file's (int8 weights take a quarter of it); memory is unknown."""
    from tango_ci.runners.latency_source import predictable

    predictions = []
    for engine, precision in predictable(target, runner):
        model = latency_model(runner, engine, precision)
        predicted = model.predict(onnx_path, batch=target.batch, size=size)
        predictions.append((engine, precision, predicted))
    percentile = f"{target.constraints.latency_percentile}_ms"
    engine, precision, predicted = min(predictions, key=lambda p: p[2][percentile])
    onnx_bytes = onnx_path.stat().st_size
    return {
        "engine": engine,
        "precision": precision,
        "latency": {k: predicted[k] for k in ("p50_ms", "p90_ms", "p95_ms", "p99_ms")}
        | {
            "predicted": True,
            "method": predicted["method"],
            "model": predicted["model"],
            "unseen_kernels": predicted["unseen_kernels"],
        },
        "artifact_bytes": onnx_bytes // 4 if precision == "int8" else onnx_bytes,
        "artifact_bytes_estimated": True,
        "peak_rss_mb": None,
    }


def describe_sources(sources: dict[str, LatencySource]) -> dict[str, dict]:
    """The sources as data for manifests and reports: kind, runner and why."""
    return {
        name: {"source": s.kind, "runner": s.runner, "why": s.why} for name, s in sources.items()
    }


def measure_candidate(
    onnx_path: Path,
    model_dir: Path,
    spec: ProjectSpec,
    workdir: Path,
    calibration: np.ndarray,
    size: int,
    sources: dict[str, LatencySource] | None = None,
    *,
    settings: dict[str, Any] | None = None,
    second_look: bool = True,
) -> dict[str, dict]:
    """Per target: latency statistics, artifact size, peak memory, budget violations and the
    latency source of the candidate exported to ``onnx_path`` (``model_dir`` serves the
    pytorch backend). ``sources`` defaults to :func:`latency_sources` of ``spec``;
    ``settings`` (default :data:`QUICK`) bound each measurement, and ``second_look`` measures
    a doubtful rejection again, longer."""
    sources = sources if sources is not None else latency_sources(spec)
    results = {}
    try:
        for target in spec.targets:
            runner = spec.runners[target.runner]
            check_request(target, runner)
            if not sources[target.name].measured:
                best = predict_candidate(target, runner, onnx_path, size)
                best["violations"] = budget_violations(
                    target,
                    latency=best["latency"],
                    artifact_bytes=best["artifact_bytes"],
                    peak_rss_mb=None,
                )
                best["latency_source"] = sources[target.name].kind
                results[target.name] = best
                continue
            measured = [
                _measure_one(
                    candidate,
                    runner,
                    onnx_path,
                    model_dir,
                    workdir,
                    size,
                    calibration,
                    settings or QUICK,
                )
                for candidate in _concrete(target, runner)
            ]
            percentile = f"{target.constraints.latency_percentile}_ms"
            best = min(measured, key=lambda m: m["latency"][percentile])
            if second_look:
                _second_look(best, target, runner, size)
            for candidate in measured:
                candidate.pop("artifact")
            best["violations"] = budget_violations(
                target,
                latency=best["latency"],
                artifact_bytes=best["artifact_bytes"],
                peak_rss_mb=best["peak_rss_mb"],
            )
            best["latency_source"] = sources[target.name].kind
            results[target.name] = best
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results
