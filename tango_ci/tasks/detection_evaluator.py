"""mAP of a detection artifact, with the post-processing every consumer of it shares."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from tango_ci.tasks._base import Evaluator, QualityMetric, evaluation_split

if TYPE_CHECKING:
    from pathlib import Path

    from tango_ci.context import StageContext

SAMPLES = 8  # predictions kept for the report's image grid


class DetectionEvaluator(Evaluator):
    """mAP of one trained network's artifacts on the test split (the validation split when the
    run has none); the reference is that network in PyTorch fp32 on the same images."""

    def __init__(
        self,
        ctx: StageContext,
        quality: QualityMetric,
        draw_score: float,
        model_dir: Path,
        split: str | None = None,
    ) -> None:
        from tango_ci.contracts import TrainedModel
        from tango_ci.detection.data_stage import load_images
        from tango_ci.detection.postprocess import Thresholds
        from tango_ci.detection.stages import resize_to
        from tango_ci.rundir import read_record

        self.quality = quality
        info = read_record(TrainedModel, model_dir)
        self.names = list(info.classes)
        self.split = split or evaluation_split(ctx.run.stage_dir("data"))
        images, truths, self.files = load_images(ctx.run, self.split)
        self.size = len(images)
        size = info.image_size
        scale = size / images.shape[1]
        self.images = resize_to(images, size)
        self.truths = [np.concatenate([t[:, :1], t[:, 1:] * scale], 1) for t in truths]
        limits = ctx.spec.detection
        self.thresholds = Thresholds(conf=limits.conf, iou=limits.iou, max_det=limits.max_det)
        deploy = limits.deploy
        self.deploy = Thresholds(conf=deploy.conf, iou=deploy.iou, max_det=deploy.max_det)
        self.draw_score = draw_score
        self.model_dir = model_dir
        self._reference: dict[str, float] | None = None

    @property
    def reference_metrics(self) -> dict[str, float]:
        if self._reference is None:
            from tango_ci.compile import PyTorchPredictor
            from tango_ci.detection.stages import load_yolo_module

            module = load_yolo_module(self.model_dir)
            scores = self.evaluate(PyTorchPredictor(module, None), 1)
            self._reference = {
                k: scores[k] for k in ("map50", "map50_95", "precision", "recall") if k in scores
            }
        return self._reference

    @property
    def reference(self) -> float:
        return self.reference_metrics[self.quality.name]

    def deployment(self):
        from tango_ci.detection.postprocess import decode
        from tango_ci.detection.search_space import preprocess_detection

        def post(raw, real):
            return decode(np.asarray(raw[0]), self.deploy)[:real]

        return preprocess_detection, post, {"thresholds": asdict(self.deploy)}

    def evaluate(self, predictor: Any, batch: int) -> dict:
        from tango_ci.bench.accuracy import fixed_batches
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
        metrics["timing"] = {
            "preprocess_ms_per_image": float(np.median(pre)),
            "postprocess_ms_per_image": float(np.median(post)),
        }
        metrics["samples"] = [
            {"file": f, "predictions": p[p[:, 4] >= self.draw_score].tolist(), "truth": t.tolist()}
            for f, p, t in list(zip(self.files, predictions, self.truths, strict=False))[:SAMPLES]
        ]
        return metrics
