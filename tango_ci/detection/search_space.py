"""The detection search space: family, scale, depth and width multipliers, input size and
training hyper-parameters; candidates train with ultralytics and are pruned on mAP50."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tango_ci.context import StageContext
from tango_ci.contracts import TrainedModel
from tango_ci.detection.models import model_yaml, write_model_yaml
from tango_ci.exceptions import TangoError
from tango_ci.rundir import write_record

LEVEL_TO_SCALE = {"xs": "n", "s": "s", "m": "m", "l": "l", "xl": "x"}
#: depth and width multipliers the search draws from (evenly spaced: Optuna steps through them)
MULTIPLIERS = (0.5, 0.75, 1.0)
CALIBRATION_IMAGES = 32


def candidate_name(params: dict) -> str:
    """yolov8n-d0.75-w0.5-96: family and scale, depth and width multipliers, input size."""
    return (
        f"{params['family']}{LEVEL_TO_SCALE[params['level']]}-d{params['depth']}"
        f"-w{params['width']}-{params['imgsz']}"
    )


def trained_model(
    task: str,
    params: dict,
    classes: list[str],
    parameters: int | None = None,
    trial: int | None = None,
) -> TrainedModel:
    """The record of a YOLO network the search suggested (``params``)."""
    return TrainedModel(
        task=task,
        family=params["family"],
        name=candidate_name(params),
        architecture=candidate_name(params),
        image_size=params["imgsz"],
        classes=tuple(classes),
        shape={
            "scale": LEVEL_TO_SCALE[params["level"]],
            "depth": params["depth"],
            "width": params["width"],
        },
        parameters=parameters,
        trial=trial,
    )


def input_sizes(image_size: int) -> list[int]:
    """The searched input sizes: the data's size and three quarters of it, multiples of 32."""
    sizes = {max(32, image_size // 32 * 32), max(32, image_size * 3 // 4 // 32 * 32)}
    return sorted(sizes)


def preprocess_detection(images: np.ndarray) -> np.ndarray:
    """uint8 NHWC letterboxed -> float32 NCHW in 0..1, as ultralytics feeds its models (the
    deployment runtime's code)."""
    from tango_ci.runtime.images import unit_scale

    return unit_scale(images)


def calibration_images(
    data_yaml: Path, size: int, count: int = CALIBRATION_IMAGES, seed: int = 0
) -> np.ndarray:
    """A seeded sample of training images, letterboxed and preprocessed."""
    from tango_ci.data.images import read_image
    from tango_ci.data.yolo import letterbox, read_dataset

    dataset, problems = read_dataset(data_yaml)
    if dataset is None:
        from tango_ci.detection.data_stage import DatasetError

        raise DatasetError(problems)
    images = dataset.images["train"]
    pick = np.random.default_rng(seed).choice(len(images), min(count, len(images)), False)
    boxed = []
    for index in sorted(pick):
        boxed.append(letterbox(read_image(images[index]), size)[0])
    return preprocess_detection(np.stack(boxed))


def export_yolo(
    weights_or_yaml: Path, out: Path, imgsz: int, *, opset: int, simplify: bool
) -> Path:
    """ONNX export through ultralytics, dynamic batch, moved to ``out``."""
    from tango_ci.detection.weights import ultralytics_module

    model = ultralytics_module().YOLO(str(weights_or_yaml), task="detect")
    produced = Path(
        model.export(
            format="onnx",
            imgsz=imgsz,
            dynamic=True,
            simplify=simplify,
            opset=opset,
            device="cpu",
            verbose=False,
        )
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(produced), out)
    return out


class DetectionSpace:
    score_name = "map50"

    def __init__(self, ctx: StageContext, device) -> None:
        from tango_ci.rundir import read_json

        if ctx.spec.search.baselines:
            raise TangoError(
                "search.baselines: baselines are not supported for detection yet; "
                "remove them from the project file"
            )
        self.spec = ctx.spec
        self.device = device
        self.run = ctx.run
        self.data_yaml = ctx.run.stage_dir("data") / "data.yaml"
        self.classes = read_json(ctx.run.stage_dir("data") / "classes.json")
        self.sizes = list(self.spec.search.image_sizes or input_sizes(self.spec.data.image_size))
        self._calibration: dict[int, np.ndarray] = {}

    @property
    def calibration(self) -> np.ndarray:
        return self._calibration[self._size]

    def suggest(self, trial) -> dict:
        search = self.spec.search
        return {
            "family": trial.suggest_categorical("family", list(search.families)),
            "level": trial.suggest_categorical("level", list(search.levels)),
            "depth": trial.suggest_float(
                "depth", MULTIPLIERS[0], MULTIPLIERS[-1], step=MULTIPLIERS[1] - MULTIPLIERS[0]
            ),
            "width": trial.suggest_float(
                "width", MULTIPLIERS[0], MULTIPLIERS[-1], step=MULTIPLIERS[1] - MULTIPLIERS[0]
            ),
            "imgsz": trial.suggest_categorical("imgsz", self.sizes),
            # around the spec's learning rate: YOLO training is sensitive to it
            "lr": trial.suggest_float(
                "lr", self.spec.train.lr / 2, self.spec.train.lr * 2, log=True
            ),
            "batch": trial.suggest_categorical("batch", [8, 16]),
        }

    def defaults(self) -> dict:
        """Each architecture is first tried at the project's own learning rate."""
        return {"lr": self.spec.train.lr}

    def architectures(self) -> list[dict]:
        """Every distinct network ``suggest`` can give (one per ``key``), as its params."""
        search = self.spec.search
        return [
            {"family": f, "level": level, "depth": d, "width": w, "imgsz": size}
            for f in search.families
            for level in search.levels
            for d in MULTIPLIERS
            for w in MULTIPLIERS
            for size in self.sizes
        ]

    def key(self, params: dict) -> str:
        return candidate_name(params)

    def config(self, params: dict) -> dict:
        return model_yaml(
            params["family"],
            LEVEL_TO_SCALE[params["level"]],
            params["depth"],
            params["width"],
            len(self.classes),
        )

    def export(self, params: dict, workdir: Path) -> tuple[Path, Path, int, dict]:
        from tango_ci.detection.weights import ultralytics_module

        workdir.mkdir(parents=True, exist_ok=True)
        yaml_path = write_model_yaml(workdir / "model.yaml", self.config(params))
        model = ultralytics_module().YOLO(str(yaml_path), task="detect")
        model.save(str(workdir / "best.pt"))
        write_record(workdir, trained_model(self.spec.task, params, self.classes))
        onnx_path = export_yolo(
            workdir / "best.pt",
            workdir / "model.onnx",
            params["imgsz"],
            opset=self.spec.export.opset,
            simplify=self.spec.export.simplify,
        )
        self._size = params["imgsz"]
        if self._size not in self._calibration:
            self._calibration[self._size] = calibration_images(self.data_yaml, self._size)
        parameters = sum(p.numel() for p in model.model.parameters())
        return (
            onnx_path,
            workdir,
            params["imgsz"],
            {"parameters": parameters, "architecture": self.key(params)},
        )

    def train(self, params: dict, number: int, on_epoch: Callable, reporter) -> float:
        from tango_ci.detection.train import MAP50, train_yolo

        folder = self.run.stage_dir("search") / "trials" / str(number)
        yaml_path = write_model_yaml(folder / "model.yaml", self.config(params))
        result = train_yolo(
            yaml_path,
            self.data_yaml,
            folder / "ultralytics",
            epochs=self.spec.search.epochs,
            imgsz=params["imgsz"],
            batch=params["batch"],
            lr0=params["lr"],
            seed=self.spec.search.seed,
            device=self.device,
            on_epoch=lambda e, m: on_epoch(e, {"map50": m.get(MAP50, 0.0)}),
            reporter=reporter,
            description=f"trial {number} {self.key(params)}",
        )
        return max((h["map50"] for h in result["history"]), default=0.0)
