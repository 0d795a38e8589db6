"""On-device measurement: latency and memory in a separate process, accuracy of artifacts."""

from tango_ci.bench.accuracy import classification_metrics, predict_labels
from tango_ci.bench.latency import instability, latency_stats, measure_latency, stability_note

__all__ = [
    "classification_metrics",
    "instability",
    "latency_stats",
    "measure_latency",
    "predict_labels",
    "stability_note",
]
