"""Accuracy of a compiled artifact on the whole validation set, per class."""

from __future__ import annotations

import numpy as np

from tango_ci.compile import Predictor
from tango_ci.data.dataset import preprocess


def predict_labels(predictor: Predictor, images: np.ndarray, batch: int) -> np.ndarray:
    """Predicted labels, run at the artifact's batch size (the last batch is padded)."""
    return np.concatenate(
        [
            np.asarray(predictor.run(preprocess(chunk))[0])[:real].argmax(1)
            for chunk, real in fixed_batches(images, batch)
        ]
    )


def fixed_batches(images: np.ndarray, batch: int):
    """Batches of exactly ``batch`` images (the last one padded by repeating its last image),
    for artifacts built for one batch size; yields each batch and how many images are real."""
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        real = len(chunk)
        if real < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - real, axis=0)])
        yield chunk, real


def classification_metrics(labels: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict:
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {}
    for index, name in enumerate(classes):
        true_positive = confusion[index, index]
        predicted_total = confusion[:, index].sum()
        actual_total = confusion[index, :].sum()
        per_class[name] = {
            "precision": float(true_positive / predicted_total) if predicted_total else 0.0,
            "recall": float(true_positive / actual_total) if actual_total else 0.0,
            "support": int(actual_total),
        }
    return {
        "accuracy": float((labels == predicted).mean()),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "classes": classes,
        "images": len(labels),
    }
