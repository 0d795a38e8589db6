"""Latency-model files for tests: a valid model of a runner, written where the runner's
latency source looks for it (``runners/<runner>/latency/<engine>-<precision>.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tango_ci.latency import METHODS, BaseLatencyModel, LatencyModel, write_model
from tango_ci.latency._flops import FlopsLinear

TAILS = {"p90": 1.25, "p95": 1.5, "p99": 2.0}
# the kinds of kernel that carry multiply-accumulates (tango_ci.latency.features)
MAC_KINDS = ("conv", "dwconv", "gconv", "linear")


def latency_model(
    runner: str,
    engine: str = "onnxruntime",
    precision: str = "fp32",
    *,
    overhead_ms: float = 1.0,
    per_mmac_ms: float = 0.01,
    method: str = "flops-linear",
) -> LatencyModel:
    """A model predicting ``overhead_ms + per_mmac_ms * millions of MACs`` with ``method``.

    The kernel methods cost each MAC-carrying kind at ``per_mmac_ms`` and every other kernel
    at nothing, so all methods predict the same p50 (their ``unseen()`` lists every key)."""
    model_class = METHODS[method]
    predictor: BaseLatencyModel
    if model_class is FlopsLinear:
        predictor = FlopsLinear(per_mmac_ms=per_mmac_ms, overhead_ms=overhead_ms)
    else:  # kernel-table keeps its default calibration: scale 1, offset 0
        costs = {kind: [0.0, per_mmac_ms, 0.0] for kind in MAC_KINDS}
        predictor = model_class(coefficients=costs, overhead_ms=overhead_ms)
    return LatencyModel(runner, engine, precision, 1, predictor, dict(TAILS), {"made_by": "tests"})


def latency_model_path(runner_yaml: Path, engine: str, precision: str) -> Path:
    return runner_yaml.parent / runner_yaml.stem / "latency" / f"{engine}-{precision}.json"


def write_latency_model(
    runner_yaml: Path, engine: str = "onnxruntime", precision: str = "fp32", **options: Any
) -> Path:
    """Write a valid latency model of the runner of ``runner_yaml`` (named after the file, as
    ``tango validate`` requires) for ``engine`` and ``precision``, with :func:`latency_model`'s
    ``options``; returns its path."""
    model = latency_model(runner_yaml.stem, engine, precision, **options)
    path = latency_model_path(runner_yaml, engine, precision)
    write_model(path, model)
    return path
