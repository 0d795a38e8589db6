"""On-device measurement: latency and memory in a separate process, accuracy of artifacts."""

from tango_ci.bench.accuracy import classification_metrics, predict_labels
from tango_ci.bench.latency import latency_stats, measure_latency

__all__ = ["classification_metrics", "latency_stats", "measure_latency", "predict_labels"]
