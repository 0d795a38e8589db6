"""Fit a runner's latency model from its measurements, judge it on held-out networks, write it.

For each engine and precision: the kernel method kept is chosen by cross-validation on the
fitted networks (the per-block table, unless the regression on whole networks is clearly
better); the FLOPs-linear baseline is fitted beside it so the report says what the kernels buy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tango_ci.exceptions import TangoError
from tango_ci.latency import LatencyModel, Sample, errors, write_model
from tango_ci.latency.features import feature_set
from tango_ci.latency.model import choose_method, fit, tail_ratios
from tango_ci.latency.records import is_held_out, model_file
from tango_ci.profiling.profile import runner_file
from tango_ci.profiling.refeature import stale
from tango_ci.spec import RunnerSpec

MIN_NETWORKS = 8


@dataclass(frozen=True)
class FittedPair:
    engine: str
    precision: str
    path: Path
    model: LatencyModel
    heldout: list[dict]  # describe, measured, predicted, flops


def _samples(records: list[dict]) -> list[Sample]:
    return [Sample(r["features"], r["p50_ms"]) for r in records]


def usable(
    records: list[dict], cpu: str, engine: str, threads: int
) -> tuple[list[dict], list[dict], dict[str, int]]:
    """(networks, blocks, counts) of the measured records of ``engine`` taken on ``cpu`` and
    read with the engine's feature set for ``threads``."""
    measured = [r for r in records if "failed" not in r]
    good = [r for r in measured if r.get("cpu") == cpu and not stale(r, engine, threads)]
    counts = {
        "records": len(records),
        "failed": len(records) - len(measured),
        "other_host": sum(r.get("cpu") != cpu for r in measured),
        "stale_features": sum(r.get("cpu") == cpu and stale(r, engine, threads) for r in measured),
    }
    networks = [r for r in good if r["kind"] == "network"]
    blocks = [r for r in good if r["kind"] == "block"]
    return networks, blocks, counts


def fit_pair(
    runner: RunnerSpec,
    engine: str,
    precision: str,
    records: list[dict],
    host: dict[str, Any],
    seed: int = 0,
    noise: dict | None = None,
) -> FittedPair:
    """Fit, judge on the held-out networks and write the model of one engine and precision;
    ``noise`` is the device's own re-measurement spread (see :mod:`.noise`), kept beside the
    model's error."""
    networks, blocks, counts = usable(records, host["cpu"], engine, runner.threads)
    train = [r for r in networks if not is_held_out(r["id"])]
    held = [r for r in networks if is_held_out(r["id"])]
    if len(train) < MIN_NETWORKS or not held:
        raise TangoError(
            f"runner {runner.name} {engine} {precision}: {len(train)} fitted and {len(held)} "
            f"held-out networks measured; a model needs at least {MIN_NETWORKS} and 1 "
            "(give the profile more time or more --networks)"
        )
    method, options, scores = choose_method(_samples(train), _samples(blocks), seed)
    predictor = fit(method, _samples(train), _samples(blocks), **options)
    flops = fit("flops-linear", _samples(train), [])
    measured = np.array([r["p50_ms"] for r in held])
    predicted = predictor.predict_many(_samples(held))
    baseline = flops.predict_many(_samples(held))
    metadata = {
        "feature_set": feature_set(engine, runner.threads),
        "host": host,
        "samples": {
            "networks_fitted": len(train),
            "networks_held_out": len(held),
            "blocks": len(blocks),
            **counts,
        },
        "heldout": errors(predicted, measured),
        "heldout_flops_linear": errors(baseline, measured),
        "cross_validation": scores,
    }
    if noise is not None:
        metadata["noise_floor"] = noise
    model = LatencyModel(
        runner.name,
        engine,
        precision,
        runner.threads,
        predictor,
        tail_ratios(train),
        metadata,
    )
    path = model_file(runner_file(runner), engine, precision)
    write_model(path, model)
    rows = [
        {"describe": r["describe"], "measured": m, "predicted": p, "flops": f}
        for r, m, p, f in zip(held, measured, predicted, baseline, strict=True)
    ]
    return FittedPair(engine, precision, path, model, rows)
