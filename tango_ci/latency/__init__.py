"""Latency models of device runners: a network's latency on a device predicted from its ONNX
graph, on any host, from numbers the device measured (``tango runner profile``)."""

from tango_ci.latency._base import BaseLatencyModel, Sample, errors
from tango_ci.latency.features import FeatureError, kernels, network_features
from tango_ci.latency.model import (
    METHODS,
    LatencyModel,
    LatencyModelError,
    load_model,
    model_problem,
    write_model,
)

__all__ = [
    "METHODS",
    "BaseLatencyModel",
    "FeatureError",
    "LatencyModel",
    "LatencyModelError",
    "Sample",
    "errors",
    "kernels",
    "load_model",
    "model_problem",
    "network_features",
    "write_model",
]
