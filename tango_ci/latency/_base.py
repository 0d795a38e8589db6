"""The base of latency models: fitted on measured networks (and blocks), asked for a p50.

A model is plain numbers in JSON (``runners/<runner>/latency/<engine>-<precision>.json``): it
is read on other hosts from a pull request, so it is never pickled, and a file is checked
against ``schemas/latency-model.schema.json`` before a number of it is used.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

Features = dict[str, list[float]]


@dataclass(frozen=True)
class Sample:
    """One measured network or block: its summed kernel features and its median latency."""

    features: Features
    p50_ms: float


def relative_least_squares(
    columns: np.ndarray,
    target: np.ndarray,
    *,
    nonnegative: bool,
    row_weights: np.ndarray | None = None,
) -> np.ndarray:
    """Coefficients minimising the squared relative error ``(columns @ x - target) / target``
    (each row's times ``row_weights``); non-negative when asked (a kernel never makes a network
    faster). Columns are scaled to unit size first, so that counts and millions of MACs weigh
    alike."""
    weights = 1.0 / np.maximum(target, 1e-6)
    if row_weights is not None:
        weights = weights * row_weights
    scale = np.abs(columns).max(axis=0)
    scale[scale == 0] = 1.0
    design = columns / scale * weights[:, None]
    goal = target * weights
    if nonnegative:
        from scipy.optimize import nnls

        solution, _ = nnls(design, goal, maxiter=50 * design.shape[1])
    else:
        solution = np.linalg.lstsq(design, goal, rcond=None)[0]
    return solution / scale


def errors(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """How predictions compare with measurements: MAPE, RMSE, RMSPE, the share within 5% and
    10%, and Spearman's rank correlation (nn-Meter's and HELP's yardsticks)."""
    predicted = np.asarray(predicted, dtype=np.float64)
    measured = np.asarray(measured, dtype=np.float64)
    relative = (predicted - measured) / measured
    result = {
        "count": len(measured),
        "mape": float(np.mean(np.abs(relative))),
        "rmse_ms": float(np.sqrt(np.mean((predicted - measured) ** 2))),
        "rmspe": float(np.sqrt(np.mean(relative**2))),
        "within_5": float(np.mean(np.abs(relative) <= 0.05)),
        "within_10": float(np.mean(np.abs(relative) <= 0.10)),
        "spearman": float("nan"),
    }
    if len(measured) > 2 and np.ptp(measured) > 0 and np.ptp(predicted) > 0:
        from scipy.stats import spearmanr

        result["spearman"] = float(spearmanr(predicted, measured).statistic)
    return result


class BaseLatencyModel(abc.ABC):
    """Fit on samples, predict a network's p50 latency from its features."""

    method: ClassVar[str]
    #: what the method needs: whole networks only, or isolated blocks too
    needs_blocks: ClassVar[bool] = False

    @abc.abstractmethod
    def fit(self, networks: list[Sample], blocks: list[Sample]) -> None:
        """Fit on measured whole networks and (for methods that use them) blocks."""

    @abc.abstractmethod
    def predict(self, features: Features) -> float:
        """The predicted p50 latency in milliseconds of a network with ``features``."""

    @abc.abstractmethod
    def parameters(self) -> dict[str, Any]:
        """The fitted numbers, as JSON."""

    @classmethod
    @abc.abstractmethod
    def from_parameters(cls, parameters: dict[str, Any]) -> BaseLatencyModel:
        """The model from :meth:`parameters` (already checked against the schema)."""

    def unseen(self, features: Features) -> list[str]:
        """Kernel keys of ``features`` the fit never saw (predicted from their kind)."""
        return []

    def predict_many(self, samples: list[Sample]) -> np.ndarray:
        return np.array([self.predict(s.features) for s in samples])
