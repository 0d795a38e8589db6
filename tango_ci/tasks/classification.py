"""Image classification: ImageFolder data, torchvision-style families, top-1 accuracy."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tango_ci.tasks._base import (
    BaseTask,
    Evaluator,
    QualityMetric,
    StageFunction,
    evaluation_split,
)

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from tango_ci.context import StageContext


class ClassificationTask(BaseTask):
    name = "classification"
    families = ("resnet", "densenet", "mobilenetv3")
    elastic_families = ("ofa-resnet", "ofa-mobilenetv3")
    trains_baselines = True
    challenger_data = True
    data_formats = ("imagefolder",)
    quality = QualityMetric("accuracy", "accuracy")
    gate_metrics = ("accuracy",)

    def data_problem(self, data_format: str, path: Path) -> str | None:
        from tango_ci.data.layout import imagefolder_problem

        return imagefolder_problem(path)

    def stages(self) -> Mapping[str, StageFunction]:
        from tango_ci.data import stage as data_stage
        from tango_ci.export import stage as export_stage

        return {"data": data_stage.run, "train": _train, "export": export_stage.run}

    def search_space(self, ctx: StageContext, device: Any) -> Any:
        from tango_ci.search.spaces import ClassificationSpace

        return ClassificationSpace(ctx, device)

    def calibration(self, ctx: StageContext, count: int) -> np.ndarray:
        import numpy as np

        from tango_ci.data.dataset import load_split, preprocess

        images, _ = load_split(ctx.run.stage_dir("data"), "train")
        rng = np.random.default_rng(ctx.spec.search.seed)
        return preprocess(images[rng.choice(len(images), min(count, len(images)), replace=False)])

    def evaluator(self, ctx: StageContext, model_dir: Path, split: str | None = None) -> Evaluator:
        return ClassificationEvaluator(ctx, self.quality, model_dir, split)

    def split_images(self, run: Any, split: str):
        from tango_ci.data.dataset import load_split

        return load_split(run.stage_dir("data"), split)[0]

    def reference_from_data(self, spec: Any, limit: int = 500):
        import numpy as np

        from tango_ci.data.dataset import decode, scan_imagefolder
        from tango_ci.spec import find_repo_root

        root, split = spec.data.resolved, spec.data.split
        if root is None or not root.is_dir():
            return None
        _, items = scan_imagefolder(
            root, split.val, split.seed, find_repo_root(spec.folder), test_fraction=split.test
        )
        held = [i for i in items if i.split in ("val", "test")][:limit]
        if not held:
            return None
        splits = "+".join(s for s in ("val", "test") if any(i.split == s for i in held))
        return np.stack([decode(i.path, spec.data.image_size) for i in held]), splits

    def labelling(self, spec: Any):
        from tango_ci.data.layout import class_folders

        root = spec.data.resolved
        return root, [folder.name for folder in class_folders(root)], False

    def bundle_specs(self, spec: Any, model: Any) -> tuple[dict, dict]:
        from tango_ci.data.dataset import MEAN, STD

        pre = {"kind": "resize", "size": model.image_size, "mean": MEAN, "std": STD}
        return pre, {"task": self.name, "output": "softmax"}

    def load_trained(self, folder: Path) -> nn.Module:
        from tango_ci.train.stage import load_network

        return load_network(folder)

    def report_details(
        self, ctx: StageContext, target: str, metrics: Mapping[str, Any], title: str, folder: Path
    ) -> tuple[list[str], dict[str, str]]:
        from tango_ci.printable import markdown_cell
        from tango_ci.report import plots

        scores = metrics["task_metrics"]
        confusion = scores["confusion"]
        predicted = [sum(row[i] for row in confusion) for i in range(len(confusion))]
        lines = ["| class | precision | recall | images |", "|---|---|---|---|"]
        undefined = False
        for index, (name, v) in enumerate(scores["per_class"].items()):
            # undefined, not 0: no image of the class, or none predicted as it
            precision = f"{v['precision']:.3f}" if predicted[index] else "–"
            recall = f"{v['recall']:.3f}" if v["support"] else "–"
            undefined = undefined or not (predicted[index] and v["support"])
            lines.append(f"| {markdown_cell(name)} | {precision} | {recall} | {v['support']} |")
        if undefined:
            lines += [
                "",
                "–: no image of the class here (recall), or none predicted as it (precision)",
            ]
        image = f"confusion-{target}.png"
        plots.confusion_matrix(
            scores["confusion"], scores["classes"], f"{target}: confusion", folder / image
        )
        return lines, {f"confusion-{target}": image}

    def synthesize(
        self, out: Path, request: Any, progress: Callable[[int, int], None] | None
    ) -> None:
        from tango_ci.data.synth import write_shapes

        write_shapes(out, request, progress)

    def count_synthetic(self, out: Path, request: Any) -> dict[str, int]:
        return {c: sum(1 for _ in (out / c).glob("*.png")) for c in request.classes}


def _train(ctx: StageContext) -> None:
    """The train stage: the search's winner, or the supernet (``search.strategy: supernet``)."""
    if ctx.spec.search.strategy == "supernet":
        from tango_ci.supernet.train import train_supernet

        train_supernet(ctx)
    else:
        from tango_ci.train import stage as train_stage

        train_stage.run(ctx)


class ClassificationEvaluator(Evaluator):
    """Top-1 accuracy (with per-class precision, recall and the confusion matrix)."""

    #: the PyTorch reference runs at this batch size (any works: the network is in eval mode)
    REFERENCE_BATCH = 64

    def __init__(
        self, ctx: StageContext, quality: QualityMetric, model_dir: Path, split: str | None = None
    ) -> None:
        from tango_ci.data.dataset import load_split
        from tango_ci.rundir import read_json

        data = ctx.run.stage_dir("data")
        self.quality = quality
        self.classes = read_json(data / "classes.json")
        self.split = split or evaluation_split(data)
        self.images, self.labels = load_split(data, self.split)
        self.size = len(self.labels)
        self.model_dir = model_dir
        self._reference: dict[str, float] | None = None

    @property
    def reference_metrics(self) -> dict[str, float]:
        """The trained network in PyTorch fp32 on the same split, evaluated once."""
        if self._reference is None:
            from tango_ci.compile import PyTorchPredictor
            from tango_ci.train.stage import load_network

            predictor = PyTorchPredictor(load_network(self.model_dir), None)
            scores = self.evaluate(predictor, self.REFERENCE_BATCH)
            self._reference = {self.quality.name: scores[self.quality.name]}
        return self._reference

    @property
    def reference(self) -> float:
        return self.reference_metrics[self.quality.name]

    def deployment(self):
        import numpy as np

        from tango_ci.data.dataset import preprocess

        def post(raw, real):  # probabilities and the top class, as a device answers
            logits = np.asarray(raw[0], dtype=np.float32)[:real]
            exp = np.exp(logits - logits.max(1, keepdims=True))
            probabilities = exp / exp.sum(1, keepdims=True)
            return probabilities.argmax(1), probabilities

        return preprocess, post, {"output": "softmax and top-1"}

    def evaluate(self, predictor: Any, batch: int) -> dict:
        from tango_ci.bench.accuracy import classification_metrics, predict_labels

        return classification_metrics(
            self.labels, predict_labels(predictor, self.images, batch), self.classes
        )
