"""Training with ultralytics' trainer (its losses, augmentation and EMA), driven by us:
offline, on our thread count, into our run folder, with per-epoch callbacks for pruning and
progress, and resume from ``last.pt`` after a kill, only when its sha256 is the one recorded
when ultralytics saved it.

The mAP measured here is ultralytics' validation, not the bench's, and the two differ on the
same weights and the same ``val`` split (measured on the shapes example, CPU fp32, best.pt:
ultralytics mAP50 0.6211, the bench's evaluator 0.6190, and 0.6211 again once given the
multi-label NMS, the padded canvas and the ``max_det`` below):

- ultralytics' validator keeps every class above ``conf`` for each box (multi-label NMS); the
  bench keeps each box's best class only, as deployed inference does;
- its validation loader uses rectangular batches padded by half a stride: a square image is
  resized to ``imgsz`` and run on an ``imgsz + 32`` canvas (16 grey pixels each side, for an
  ``imgsz`` that is a multiple of 32); the bench runs exactly ``imgsz``;
- it resizes each original file once with OpenCV (bilinear, no antialiasing, long side rounded
  up); the bench letterboxes with Pillow (antialiased) to ``data.image_size`` and once more to
  the model's size when that differs (no effect on the synthetic data, whose images are square
  and of the model's size);
- per epoch it validates the EMA weights in fp32 (inputs in fp16 on a CUDA GPU with AMP), and its
  ``max_det`` is 300; ``best.pt`` holds those weights rounded to fp16 and the bench applies
  ``detection.max_det``.

So the training record states its evaluator (:func:`validation_protocol`) next to its numbers.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import torch

from tango_ci.detection.weights import check_pretrained, ultralytics_module
from tango_ci.progress import SILENT, Reporter
from tango_ci.rundir import write_json
from tango_ci.train import checkpoints
from tango_ci.train.device import TrainDevice, available_cores

MAP50 = "metrics/mAP50(B)"
MAP50_95 = "metrics/mAP50-95(B)"
PRECISION = "metrics/precision(B)"
RECALL = "metrics/recall(B)"
#: which epoch's weights ``best.pt`` holds, kept beside them so that a resume still knows
BEST_EPOCH = "best_epoch.json"


def train_yolo(
    model_yaml: Path,
    data_yaml: Path,
    out_dir: Path,
    *,
    epochs: int,
    imgsz: int,
    batch: int,
    lr0: float,
    seed: int,
    patience: int = 100,
    mosaic: float = 1.0,
    pretrained: Path | None = None,
    device: TrainDevice | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    reporter: Reporter = SILENT,
    description: str = "training",
) -> dict:
    """Train (or resume) into ``out_dir``.

    Returns the per-epoch ``history``, the ``best`` and ``last`` weights, ``best_epoch`` (the
    epoch whose weights ``best.pt`` holds), ``final`` (ultralytics' validation of ``best.pt``
    after the last epoch, None if it did not run) and ``validation`` (how ultralytics measured).
    ``on_epoch`` is called once per trained epoch, never for that final validation.
    """
    YOLO = ultralytics_module().YOLO
    device = device or TrainDevice(kind="cpu", threads=available_cores())
    last = out_dir / "weights" / "last.pt"
    resumed = last.exists()
    workers = device.loader_workers(-(-_train_images(data_yaml) // batch))
    bar = reporter.task(description, total=epochs)
    listener = EpochListener(out_dir, bar, on_epoch)

    def setup(trainer) -> None:
        # ultralytics loads CPU batches in the training process; we keep workers where the
        # device has cores to spare (it reset them to 0 for the CPU) and all threads for torch
        trainer.args.workers = workers
        torch.set_num_threads(device.threads)

    if pretrained is not None:
        check_pretrained(pretrained)  # refuse a bad file before any work, with its name
    try:
        if resumed:
            checkpoints.verify(last)  # a planted last.pt is refused before ultralytics reads it
            model = YOLO(str(last))
            listener.attach(model, setup)
            model.train(resume=True, workers=workers, device=device.ultralytics)
        else:
            model = YOLO(str(model_yaml), task="detect")
            listener.attach(model, setup)
            model.train(
                data=str(data_yaml),
                epochs=epochs,
                imgsz=imgsz,
                batch=batch,
                lr0=lr0,
                optimizer="AdamW",
                seed=seed,
                deterministic=True,
                patience=patience,
                device=device.ultralytics,
                workers=workers,
                amp=device.kind == "cuda",
                plots=False,
                verbose=False,
                pretrained=str(pretrained) if pretrained else False,
                project=str(out_dir.parent),
                name=out_dir.name,
                exist_ok=True,
                warmup_epochs=min(3.0, epochs / 5),
                val=True,
                close_mosaic=max(1, epochs // 4),
                mosaic=mosaic,
            )
    finally:
        bar.close()
    history = read_history(out_dir)
    return {
        "history": history,
        "best": out_dir / "weights" / "best.pt",
        "last": last,
        "resumed": resumed,
        "best_epoch": read_best_epoch(out_dir, len(history)),
        "final": listener.final,
        "validation": listener.validation,
    }


class EpochListener:
    """ultralytics' callbacks turned into one ``on_epoch`` call per trained epoch.

    After its last epoch ultralytics validates ``best.pt`` and reports it through
    ``on_fit_epoch_end`` too, with ``trainer.epoch`` one past the last: that call is no epoch
    (it made a 3-epoch trial log 4 rows), so it is kept apart as ``final``. A trained epoch is
    told from it by the ``on_train_epoch_end`` that precedes every real one.
    """

    def __init__(self, out_dir: Path, bar, on_epoch: Callable[[int, dict], None] | None) -> None:
        self.out_dir, self.bar, self.on_epoch = out_dir, bar, on_epoch
        self.trained = False
        self.final: dict | None = None
        self.validation: dict | None = None

    def attach(self, model, setup: Callable) -> None:
        model.add_callback("on_pretrain_routine_start", setup)
        model.add_callback("on_train_epoch_end", self.train_epoch_end)
        model.add_callback("on_fit_epoch_end", self.fit_epoch_end)
        model.add_callback("on_model_save", self.model_saved)
        model.add_callback("on_train_end", self.record)  # after its final rewrite of both files

    def train_epoch_end(self, trainer) -> None:
        self.trained = True

    def fit_epoch_end(self, trainer) -> None:
        metrics = {k: float(v) for k, v in (trainer.metrics or {}).items()}
        if self.validation is None:
            self.validation = validation_protocol(trainer)
        if not self.trained:  # ultralytics' final validation of best.pt
            self.final = {"weights": "best.pt", **quality(metrics)}
            return
        self.trained = False
        self.bar.update(completed=trainer.epoch + 1, mAP50=metrics.get(MAP50, 0.0))
        if self.on_epoch is not None:
            self.on_epoch(trainer.epoch, metrics)

    def model_saved(self, trainer) -> None:
        # ultralytics rewrites best.pt whenever an epoch's fitness equals the best so far (a later
        # tie wins); its fitness is its own formula, so the epoch is taken from the save itself
        if trainer.best_fitness is not None and trainer.best_fitness == trainer.fitness:
            write_json(self.out_dir / BEST_EPOCH, {"epoch": int(trainer.epoch)})
        self.record(trainer)

    @staticmethod
    def record(trainer) -> None:  # what ultralytics wrote, for a later resume
        for path in (trainer.last, trainer.best):
            if Path(path).is_file():
                checkpoints.record(Path(path))


def quality(metrics: dict) -> dict:
    """The box metrics of one ultralytics validation, named as the bench names them."""
    return {
        "map50": metrics.get(MAP50, 0.0),
        "map50_95": metrics.get(MAP50_95, 0.0),
        "precision": metrics.get(PRECISION, 0.0),
        "recall": metrics.get(RECALL, 0.0),
    }


def validation_protocol(trainer) -> dict:
    """How ultralytics' validator measures, as data: where it differs from the bench's
    evaluator (module docstring) a reader of the training record can see it."""
    args, dataset = trainer.validator.args, trainer.test_loader.dataset
    size = int(dataset.imgsz)
    shapes = (
        {(int(h), int(w)) for h, w in dataset.batch_shapes}
        if getattr(dataset, "rect", False)
        else {(size, size)}
    )
    return {
        "evaluator": "ultralytics DetectionValidator",
        "split": "val",
        "nms": "multi-label",
        "conf": float(args.conf),
        "iou": float(args.iou),
        "max_det": int(args.max_det),
        "image_size": size,
        "input_shapes": [list(s) for s in sorted(shapes)],
        "inputs": "fp16" if getattr(args, "quantize", None) == 16 else "fp32",
        "epoch_weights": "EMA, fp32",
        "final_weights": "best.pt (fp16 weights)",
    }


def read_best_epoch(out_dir: Path, epochs: int) -> int | None:
    """The epoch whose weights ``best.pt`` holds, if it was recorded and is one of ``epochs``."""
    try:
        epoch = json.loads((out_dir / BEST_EPOCH).read_text(encoding="utf-8"))["epoch"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return epoch if isinstance(epoch, int) and 0 <= epoch < epochs else None


def _train_images(data_yaml: Path) -> int:
    """How many training images the data stage's data.yaml names (to size the loader)."""
    import yaml

    from tango_ci.data.layout import IMAGE_SUFFIXES
    from tango_ci.data.yolo import listed_images

    try:
        content = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
        folder = Path(content["path"]) / content["train"]
        if folder.is_file():  # a list file: the test split was drawn from the training images
            return len(listed_images(folder))
    except (OSError, yaml.YAMLError, KeyError, TypeError, UnicodeDecodeError):
        return 0
    return sum(1 for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def read_history(out_dir: Path) -> list[dict]:
    path = out_dir / "results.csv"
    if not path.exists():
        return []
    with open(path) as handle:
        rows = [{k.strip(): float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    return [
        {
            "epoch": int(r["epoch"]) - 1,
            "map50": r.get(MAP50, 0.0),
            "map50_95": r.get(MAP50_95, 0.0),
            "box_loss": r.get("train/box_loss", 0.0),
            "cls_loss": r.get("train/cls_loss", 0.0),
            "val_box_loss": r.get("val/box_loss", 0.0),
            "precision": r.get(PRECISION, 0.0),
            "recall": r.get(RECALL, 0.0),
        }
        for r in rows
    ]
