"""How good an artifact is, by task: top-1 accuracy, or mAP with the shared post-processing.

Each evaluator also gives the PyTorch fp32 reference, so every artifact's drop is measured
against the same network on the same images.
"""

from __future__ import annotations

import time

import numpy as np

from tango_ci.bench.accuracy import fixed_batches
from tango_ci.compile import Predictor
from tango_ci.rundir import read_json
from tango_ci.stage import StageContext


class ClassificationEvaluator:
    quality_name = "accuracy"

    def __init__(self, ctx: StageContext) -> None:
        from tango_ci.data.stage import load_arrays

        self.classes = read_json(ctx.run.stage_dir("data") / "classes.json")
        self.images, self.labels = load_arrays(ctx.run, "val")
        self.reference = read_json(ctx.run.stage_dir("train") / "metrics.json")["val_accuracy"]

    def evaluate(self, predictor: Predictor, batch: int) -> dict:
        from tango_ci.bench.accuracy import classification_metrics, predict_labels

        return classification_metrics(self.labels, predict_labels(predictor, self.images, batch),
                                      self.classes)


class DetectionEvaluator:
    quality_name = "mAP50"
    SAMPLES = 8  # predictions kept for the report's image grid

    def __init__(self, ctx: StageContext) -> None:
        from tango_ci.detection.data_stage import load_val
        from tango_ci.detection.postprocess import Thresholds
        from tango_ci.detection.stages import _resize_to

        info = read_json(ctx.run.stage_dir("train") / "model.json")
        self.names = info["classes"]
        images, truths, self.files = load_val(ctx.run)
        size = info["image_size"]
        scale = size / images.shape[1]
        self.images = _resize_to(images, size)
        self.truths = [np.concatenate([t[:, :1], t[:, 1:] * scale], 1) for t in truths]
        limits = ctx.spec.detection
        self.thresholds = Thresholds(conf=limits.conf, iou=limits.iou, max_det=limits.max_det)
        self._train_dir = ctx.run.stage_dir("train")
        self._reference: float | None = None

    @property
    def reference(self) -> float:
        if self._reference is None:
            from tango_ci.compile._pytorch import PyTorchPredictor
            from tango_ci.detection.stages import load_yolo_module

            self._reference = self.evaluate(PyTorchPredictor(load_yolo_module(self._train_dir),
                                                             None), 1)["accuracy"]
        return self._reference

    def evaluate(self, predictor: Predictor, batch: int) -> dict:
        from tango_ci.detection.metrics import detection_metrics
        from tango_ci.detection.postprocess import decode
        from tango_ci.detection.search_space import preprocess_detection

        predictions, pre, post = [], [], []
        for chunk, real in fixed_batches(self.images, batch):
            began = time.perf_counter()
            x = preprocess_detection(chunk)
            pre.append((time.perf_counter() - began) * 1000 / len(chunk))
            raw = predictor.run(x)[0]
            began = time.perf_counter()
            predictions += decode(np.asarray(raw), self.thresholds)[:real]
            post.append((time.perf_counter() - began) * 1000 / len(chunk))
        metrics = detection_metrics(predictions, self.truths, self.names)
        metrics["accuracy"] = metrics["map50"]  # the quality the gate reads
        metrics["timing"] = {"preprocess_ms_per_image": float(np.median(pre)),
                             "postprocess_ms_per_image": float(np.median(post))}
        metrics["samples"] = [{"file": f, "predictions": p[p[:, 4] >= 0.25].tolist(),
                               "truth": t.tolist()}
                              for f, p, t in list(zip(self.files, predictions,
                                                      self.truths))[: self.SAMPLES]]
        return metrics


def make_evaluator(ctx: StageContext):
    return DetectionEvaluator(ctx) if ctx.spec.task == "detection" \
        else ClassificationEvaluator(ctx)
