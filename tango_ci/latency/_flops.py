"""The baseline every latency model is compared with: latency linear in multiply-accumulates."""

from __future__ import annotations

from typing import Any

import numpy as np

from tango_ci.latency._base import BaseLatencyModel, Features, Sample, relative_least_squares
from tango_ci.latency.features import total_macs


class FlopsLinear(BaseLatencyModel):
    method = "flops-linear"

    def __init__(self, per_mmac_ms: float = 0.0, overhead_ms: float = 0.0) -> None:
        self.per_mmac_ms = per_mmac_ms
        self.overhead_ms = overhead_ms

    def fit(self, networks: list[Sample], blocks: list[Sample]) -> None:
        columns = np.array([[total_macs(s.features), 1.0] for s in networks])
        measured = np.array([s.p50_ms for s in networks])
        self.per_mmac_ms, self.overhead_ms = (
            float(v) for v in relative_least_squares(columns, measured, nonnegative=True)
        )

    def predict(self, features: Features) -> float:
        return self.per_mmac_ms * total_macs(features) + self.overhead_ms

    def parameters(self) -> dict[str, Any]:
        return {"per_mmac_ms": self.per_mmac_ms, "overhead_ms": self.overhead_ms}

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any]) -> FlopsLinear:
        return cls(parameters["per_mmac_ms"], parameters["overhead_ms"])
