"""Kernel-level latency models: a network costs the sum of its kernels' costs.

Each kernel key, cut to at most ``depth`` parts (``conv-k3-s1`` at depth 3, ``conv-k3-s1-c64``
at 4, ``relu-fused``), has a cost per call, per million multiply-accumulates and per million
activation elements moved. A key seen in fewer than a tenth of the fitted samples (at least
:data:`MIN_SUPPORT`) shares the column of its longest prefix that is (``conv-k7-s2`` -> ``conv-k7`` -> ``conv``); a key
never seen at prediction is costed like its longest fitted prefix, else as the mean of its
kind's columns.

- ``kernel-table`` (Once-for-All's per-block table, generalised): the costs come from blocks
  timed in isolation; a linear calibration on whole networks absorbs what isolation misses
  (memory traffic between blocks, the session's fixed overhead).
- ``kernel-regression``: the same costs fitted on whole networks (blocks weigh in at half), for
  devices where isolated timings do not add up, such as engines that fuse across blocks.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from tango_ci.latency._base import BaseLatencyModel, Features, Sample, relative_least_squares
from tango_ci.latency.features import FEATURES

MIN_SUPPORT = 3
BLOCK_WEIGHT = 0.5


DEPTHS = (2, 3, 4, 5)  # key parts tried: kind-kernel, + stride, + channels, + size


def _kind(key: str) -> str:
    return key.split("-", 1)[0]


def _prefixes(key: str, depth: int) -> list[str]:
    """``key`` cut to ``depth`` parts, then each shorter cut, down to its kind."""
    parts = key.split("-")
    return ["-".join(parts[:n]) for n in range(min(depth, len(parts)), 0, -1)]


def columns_for(samples: list[Sample], depth: int) -> dict[str, str]:
    """Each kernel key of ``samples`` mapped to its column: its longest prefix (at most
    ``depth`` parts) that a tenth of the samples (at least ``MIN_SUPPORT``) have, else its
    kind."""
    least = max(MIN_SUPPORT, len(samples) // 10)  # a column fitted on a few networks overfits
    support: Counter[str] = Counter()
    for sample in samples:
        support.update({p for key in sample.features for p in _prefixes(key, depth)})
    return {
        key: next((p for p in _prefixes(key, depth) if support[p] >= least), _kind(key))
        for sample in samples
        for key in sample.features
    }


class KernelRegression(BaseLatencyModel):
    method = "kernel-regression"

    def __init__(
        self,
        coefficients: dict[str, list[float]] | None = None,
        overhead_ms: float = 0.0,
        columns: dict[str, str] | None = None,
        depth: int = 3,
    ) -> None:
        self.coefficients = coefficients or {}
        self.overhead_ms = overhead_ms
        self.columns = columns or {}
        self.depth = depth

    # ---------------------------------------------------------------- fitting
    def _design(self, samples: list[Sample], names: list[str]) -> np.ndarray:
        index = {name: i for i, name in enumerate(names)}
        width = len(FEATURES)
        design = np.zeros((len(samples), len(names) * width + 1))
        for row, sample in enumerate(samples):
            for key, values in sample.features.items():
                column = index[self.columns[key]] * width
                design[row, column : column + width] += values
            design[row, -1] = 1.0
        return design

    def _solve(self, samples: list[Sample], weights: np.ndarray) -> None:
        names = sorted(set(self.columns.values()))
        design = self._design(samples, names)
        measured = np.array([s.p50_ms for s in samples])
        solution = relative_least_squares(design, measured, nonnegative=True, row_weights=weights)
        width = len(FEATURES)
        self.coefficients = {
            name: [float(v) for v in solution[i * width : (i + 1) * width]]
            for i, name in enumerate(names)
        }
        self.overhead_ms = float(solution[-1])

    def fit(self, networks: list[Sample], blocks: list[Sample]) -> None:
        samples = networks + blocks
        self.columns = columns_for(samples, self.depth)
        weights = np.array([1.0] * len(networks) + [BLOCK_WEIGHT] * len(blocks))
        self._solve(samples, weights)

    # ---------------------------------------------------------------- prediction
    def _cost(self, key: str) -> list[float]:
        column = self.columns.get(key)
        if column in self.coefficients:
            return self.coefficients[column]
        for prefix in _prefixes(key, self.depth):
            if prefix in self.coefficients:
                return self.coefficients[prefix]
        kin = [c for name, c in self.coefficients.items() if _kind(name) == _kind(key)]
        if not kin:
            return [0.0] * len(FEATURES)
        return [float(v) for v in np.mean(kin, axis=0)]

    def raw(self, features: Features) -> float:
        return self.overhead_ms + sum(
            float(np.dot(self._cost(key), values)) for key, values in features.items()
        )

    def predict(self, features: Features) -> float:
        return self.raw(features)

    def unseen(self, features: Features) -> list[str]:
        return sorted(
            key
            for key in features
            if key not in self.columns
            and not any(p in self.coefficients for p in _prefixes(key, self.depth))
            and key != "shape"
        )

    def parameters(self) -> dict[str, Any]:
        return {
            "features": list(FEATURES),
            "depth": self.depth,
            "overhead_ms": self.overhead_ms,
            "columns": dict(sorted(self.columns.items())),
            "coefficients": self.coefficients,
        }

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any]) -> KernelRegression:
        model = cls(
            {k: list(v) for k, v in parameters["coefficients"].items()},
            parameters["overhead_ms"],
            dict(parameters["columns"]),
            parameters["depth"],
        )
        model._load_extra(parameters)
        return model

    def _load_extra(self, parameters: dict[str, Any]) -> None:
        """Hook for variants that store more than the kernel costs."""


class KernelTable(KernelRegression):
    method = "kernel-table"
    needs_blocks = True

    def __init__(self, *args: Any, scale: float = 1.0, offset_ms: float = 0.0, **kw: Any):
        super().__init__(*args, **kw)
        self.scale = scale
        self.offset_ms = offset_ms

    def fit(self, networks: list[Sample], blocks: list[Sample]) -> None:
        self.columns = columns_for(blocks, self.depth)  # other kernels: by prefix or kind
        self._solve(blocks, np.ones(len(blocks)))
        raw = np.array([[self.raw(s.features), 1.0] for s in networks])
        measured = np.array([s.p50_ms for s in networks])
        self.scale, self.offset_ms = (
            float(v) for v in relative_least_squares(raw, measured, nonnegative=True)
        )

    def predict(self, features: Features) -> float:
        return self.scale * self.raw(features) + self.offset_ms

    def parameters(self) -> dict[str, Any]:
        return super().parameters() | {
            "calibration": {"scale": self.scale, "offset_ms": self.offset_ms}
        }

    def _load_extra(self, parameters: dict[str, Any]) -> None:
        self.scale = parameters["calibration"]["scale"]
        self.offset_ms = parameters["calibration"]["offset_ms"]
