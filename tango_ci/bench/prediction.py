"""How far the runner's latency model was from what bench just measured on the device.

Written beside every measurement whose runner has a model for the artifact's engine and
precision (``prediction`` and ``prediction_error`` in ``bench/<target>/metrics.json``), carried
into the report and the registry record, so the model's drift is tracked release by release
(``tango runner latency-report RUNNER``). A model that cannot be read does not stop bench: the
reason is recorded instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tango_ci.exceptions import TangoError
from tango_ci.runners.latency_source import latency_model, latency_model_path


def prediction_check(
    runner, engine: str, precision: str, onnx_path: Path, batch: int, size: int, latency: dict
) -> dict[str, Any] | None:
    """The model's prediction for the measured network and its signed relative error at the
    p50 (positive: the model predicted slower), or None when the runner has no model."""
    path = latency_model_path(runner, engine, precision)
    if path is None:
        return None
    try:
        model = latency_model(runner, engine, precision)
        predicted = model.predict(onnx_path, batch=batch, size=size)
    except TangoError as exc:
        return {"model": str(path), "unavailable": str(exc)}
    return against_measurement(
        {
            "model": predicted["model"],
            "method": predicted["method"],
            "predicted_p50_ms": predicted["p50_ms"],
            "predicted_p95_ms": predicted["p95_ms"],
            "unseen_kernels": predicted["unseen_kernels"],
            "model_heldout_within_10": model.metadata.get("heldout", {}).get("within_10"),
        },
        latency,
    )


def against_measurement(prediction: dict[str, Any], latency: dict) -> dict[str, Any]:
    """``prediction`` with the measured p50 and p95 of ``latency`` and its relative error at
    the p50 (again, when the artifact was measured again)."""
    measured = latency["p50_ms"]
    return prediction | {
        "measured_p50_ms": measured,
        "measured_p95_ms": latency["p95_ms"],
        "relative_error": (prediction["predicted_p50_ms"] - measured) / measured,
    }
