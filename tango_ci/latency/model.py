"""A runner's latency model as a file: written by ``tango runner profile`` on the device, read
anywhere to predict what a network's latency on that device would be.

The file is data from the repository (a pull request may change it): it is size-limited,
strict JSON, checked against ``schemas/latency-model.schema.json``, and only numbers of it are
used. A prediction is a p50 from the fitted method, and the tail percentiles from the ratios
the device showed while it was profiled.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from tango_ci.exceptions import TangoError
from tango_ci.jsonfiles import RunFileError, display, non_finite_at, read_json, write_json
from tango_ci.latency._base import BaseLatencyModel, Sample, errors
from tango_ci.latency._boosted import BoostedKernels
from tango_ci.latency._flops import FlopsLinear
from tango_ci.latency._kernels import DEPTHS, KernelRegression, KernelTable
from tango_ci.latency.features import DEFAULT_FEATURE_SET, network_features

METHODS: dict[str, type[BaseLatencyModel]] = {
    m.method: m for m in (KernelTable, KernelRegression, BoostedKernels, FlopsLinear)
}
FORMAT = "tango-latency-model"
MAX_MODEL_BYTES = 4 * 2**20
TAILS = ("p90", "p95", "p99")
FOLDS = 5


class LatencyModelError(TangoError):
    _template = "{source}: not a usable latency model: {reason}"


@dataclass
class LatencyModel:
    runner: str
    engine: str
    precision: str
    threads: int
    predictor: BaseLatencyModel
    tails: dict[str, float]
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def method(self) -> str:
        return self.predictor.method

    def predict_features(self, features: dict[str, list[float]]) -> dict[str, Any]:
        p50 = max(self.predictor.predict(features), 1e-4)
        return {
            "p50_ms": p50,
            **{f"{t}_ms": p50 * self.tails[t] for t in TAILS},
            "unseen_kernels": self.predictor.unseen(features),
            "method": self.method,
            "model": self.source,
        }

    def predict(self, onnx_path: Path, batch: int = 1, size: int | None = None) -> dict[str, Any]:
        """Predicted ``p50_ms`` .. ``p99_ms`` of the ONNX network at ``onnx_path`` at
        ``batch`` (images of ``size``), with the kernel keys the model never saw and where the
        model came from."""
        return self.predict_features(network_features(onnx_path, batch, size, self.features))

    @property
    def features(self) -> str:
        """The feature set the model was fitted on (models from before the sets: the ONNX
        graph's)."""
        return str(self.metadata.get("feature_set", DEFAULT_FEATURE_SET))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema_version": 1,
            "runner": self.runner,
            "engine": self.engine,
            "precision": self.precision,
            "threads": self.threads,
            "method": self.method,
            "parameters": self.predictor.parameters(),
            "tails": self.tails,
            "metadata": self.metadata,
        }


@cache
def _validator() -> Any:
    import json

    from jsonschema import Draft202012Validator

    from tango_ci.contracts import schema_file

    path = schema_file("latency-model.schema.json")
    return Draft202012Validator(json.loads(path.read_text(encoding="utf-8")))


def model_problem(data: Any) -> str | None:
    """The first way ``data`` breaks the latency-model schema (or holds a NaN), or None."""
    found = non_finite_at(data)
    if found:
        return f"at {found[1]}: not a finite number"
    error = next(iter(sorted(_validator().iter_errors(data), key=lambda e: e.path)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the top level"
    return f"at {where}: {error.message[:160]}"


def load_model(path: Path) -> LatencyModel:
    """The latency model at ``path``, checked; one line naming the file and field otherwise."""
    shown = display(Path(path))
    if Path(path).is_symlink():
        raise LatencyModelError(source=shown, reason="a symbolic link")
    try:
        data = read_json(Path(path), limit=MAX_MODEL_BYTES)
    except RunFileError as exc:
        raise LatencyModelError(source=shown, reason=str(exc).split(": ", 1)[-1]) from None
    problem = model_problem(data)
    if problem:
        raise LatencyModelError(source=shown, reason=problem)
    try:
        predictor = METHODS[data["method"]].from_parameters(data["parameters"])
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise LatencyModelError(source=shown, reason=f"parameters: {exc}") from None
    return LatencyModel(
        data["runner"],
        data["engine"],
        data["precision"],
        data["threads"],
        predictor,
        dict(data["tails"]),
        data["metadata"],
        shown,
    )


def write_model(path: Path, model: LatencyModel) -> None:
    data = model.to_json()
    problem = model_problem(data)
    if problem:  # a fit that cannot be read back is a bug here, not a user error
        raise AssertionError(f"latency model breaks its own schema {problem}")
    write_json(path, data)


# ------------------------------------------------------------------------------- fitting
def tail_ratios(records: list[dict]) -> dict[str, float]:
    """The median ratio of each tail percentile to the p50 over measured networks."""
    return {
        t: max(1.0, statistics.median(r[f"{t}_ms"] / r["p50_ms"] for r in records))
        if records
        else 1.0
        for t in TAILS
    }


def _folds(count: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(count)
    return [order[i::FOLDS] for i in range(min(FOLDS, count))]


def cross_validate(
    method: str, networks: list[Sample], blocks: list[Sample], seed: int = 0, **options: Any
) -> dict[str, float]:
    """Errors of ``method`` on each network when fitted without its fold."""
    predicted = np.zeros(len(networks))
    for held in _folds(len(networks), seed):
        held_set = set(held.tolist())
        model = METHODS[method](**options)
        model.fit([s for i, s in enumerate(networks) if i not in held_set], blocks)
        predicted[held] = model.predict_many([networks[i] for i in held])
    return errors(predicted, np.array([s.p50_ms for s in networks]))


def choose_method(
    networks: list[Sample], blocks: list[Sample], seed: int = 0
) -> tuple[str, dict[str, Any], dict[str, dict[str, float]]]:
    """The kernel method and key depth to keep, and every candidate's cross-validated errors
    (``kernel-table/3`` ...; ``flops-linear`` for comparison): the most networks within 10%,
    the per-block table and the shorter keys on a tie within 2 points."""
    candidates: list[tuple[str, dict[str, Any]]] = [
        (method, {"depth": depth})
        for method in ("kernel-table", "kernel-regression", "kernel-boosted")
        if blocks or not METHODS[method].needs_blocks
        for depth in DEPTHS
    ]
    scores = {
        f"{m}/{o['depth']}": cross_validate(m, networks, blocks, seed, **o) for m, o in candidates
    }
    scores["flops-linear"] = cross_validate("flops-linear", networks, blocks, seed)
    best_score = max(scores[f"{m}/{o['depth']}"]["within_10"] for m, o in candidates)
    method, options = next(
        (m, o)
        for m, o in candidates
        if scores[f"{m}/{o['depth']}"]["within_10"] >= best_score - 0.02
    )
    return method, options, scores


def fit(
    method: str, networks: list[Sample], blocks: list[Sample], **options: Any
) -> BaseLatencyModel:
    model = METHODS[method](**options)
    model.fit(networks, blocks)
    return model
