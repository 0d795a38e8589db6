"""Object detection: YOLO data, ultralytics families built from their YAML, mAP50."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from tango_ci.tasks._base import BaseTask, Evaluator, QualityMetric, StageFunction

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from tango_ci.context import StageContext

#: predictions drawn in the report's image grid have at least this score
DRAW_SCORE = 0.25


class DetectionTask(BaseTask):
    name = "detection"
    families = ("yolov8", "yolo11", "yolo26")
    data_formats = ("yolo",)
    quality = QualityMetric("map50", "mAP50")
    gate_metrics = ("map50", "map50_95")
    metric_labels: ClassVar[Mapping[str, str]] = {"map50": "mAP50", "map50_95": "mAP50-95"}

    def lineage(self, model: Any) -> str:
        """The family and scale (yolov8n): depth, width and input size are tuned per retrain."""
        return f"{model.family}{model.shape.get('scale', '')}"

    def training_summary(self, training: Mapping[str, Any]) -> str:
        return (
            f"validation mAP50 {training['val_map50']:.4f}, mAP50-95 "
            f"{training['val_map50_95']:.4f} (ultralytics' validator: padded batches, "
            "several classes per box; bench keeps one class per box)"
        )

    def data_problem(self, data_format: str, path: Path) -> str | None:
        from tango_ci.data.layout import yolo_problem

        return yolo_problem(path)

    def stages(self) -> Mapping[str, StageFunction]:
        from tango_ci.detection import data_stage, stages

        return {"data": data_stage.run, "train": stages.train, "export": stages.export}

    def prepare(self, ctx: StageContext) -> None:
        from tango_ci.detection.ultralytics_env import prepare_environment

        prepare_environment(ctx.run.project_runs / ".ultralytics")

    def search_space(self, ctx: StageContext, device: Any) -> Any:
        from tango_ci.detection.search_space import DetectionSpace

        return DetectionSpace(ctx, device)

    def calibration(self, ctx: StageContext, count: int) -> np.ndarray:
        from tango_ci.detection.stages import calibration_for

        return calibration_for(ctx, max(1, count // 2))

    def evaluator(self, ctx: StageContext, model_dir: Path, split: str | None = None) -> Evaluator:
        from tango_ci.tasks.detection_evaluator import DetectionEvaluator

        return DetectionEvaluator(ctx, self.quality, DRAW_SCORE, model_dir, split)

    def split_images(self, run: Any, split: str):
        from tango_ci.detection.data_stage import load_images

        return load_images(run, split)[0]

    def labelling(self, spec: Any):
        from tango_ci.data.yolo import read_dataset
        from tango_ci.exceptions import TangoError

        dataset, problems = read_dataset(spec.data.resolved)
        if dataset is None:
            raise TangoError(problems[0].format() if problems else "the dataset cannot be read")
        return dataset.root, list(dataset.names), True

    def bundle_specs(self, spec: Any, model: Any) -> tuple[dict, dict]:
        deploy = spec.detection.deploy
        thresholds = {"conf": deploy.conf, "iou": deploy.iou, "max_det": deploy.max_det}
        return {"kind": "letterbox", "size": model.image_size}, {
            "task": self.name,
            "thresholds": thresholds,
        }

    def load_trained(self, folder: Path) -> nn.Module:
        from tango_ci.detection.stages import load_yolo_module

        return load_yolo_module(folder)

    def report_details(
        self, ctx: StageContext, target: str, metrics: Mapping[str, Any], title: str, folder: Path
    ) -> tuple[list[str], dict[str, str]]:
        from tango_ci.detection.report import detection_details

        return detection_details(ctx, target, metrics, title, folder, DRAW_SCORE)

    def synthesize(
        self, out: Path, request: Any, progress: Callable[[int, int], None] | None
    ) -> None:
        from tango_ci.data.synth_detection import write_detection_dataset

        write_detection_dataset(
            out,
            classes=request.classes,
            size=request.size,
            images=request.images_per_class * len(request.classes),
            seed=request.seed,
            progress=progress,
        )

    def count_synthetic(self, out: Path, request: Any) -> dict[str, int]:
        return {s: sum(1 for _ in (out / "images" / s).glob("*.png")) for s in ("train", "val")}
