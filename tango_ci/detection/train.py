"""Training with ultralytics' trainer (its losses, augmentation and EMA), driven by us:
offline, on our thread count, into our run folder, with per-epoch callbacks for pruning and
progress, and resume from ``last.pt`` after a kill, only when its sha256 is the one recorded
when ultralytics saved it."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import torch

from tango_ci.detection.ultralytics_env import ultralytics_module
from tango_ci.detection.weights import check_pretrained
from tango_ci.progress import SILENT, Reporter
from tango_ci.train import checkpoints
from tango_ci.train.device import TrainDevice, available_cores

MAP50 = "metrics/mAP50(B)"
MAP50_95 = "metrics/mAP50-95(B)"


def train_yolo(model_yaml: Path, data_yaml: Path, out_dir: Path, *, epochs: int, imgsz: int,
               batch: int, lr0: float, seed: int, patience: int = 100, mosaic: float = 1.0,
               pretrained: Path | None = None, device: TrainDevice | None = None,
               on_epoch: Callable[[int, dict], None] | None = None,
               reporter: Reporter = SILENT, description: str = "training") -> dict:
    """Train (or resume) into ``out_dir``; returns the history and best weights path."""
    YOLO = ultralytics_module().YOLO
    device = device or TrainDevice(kind="cpu", threads=available_cores())
    last = out_dir / "weights" / "last.pt"
    resumed = last.exists()
    workers = device.loader_workers(-(-_train_images(data_yaml) // batch))
    bar = reporter.task(description, total=epochs)

    def fit_epoch_end(trainer) -> None:
        metrics = {k: float(v) for k, v in (trainer.metrics or {}).items()}
        bar.update(completed=trainer.epoch + 1, mAP50=metrics.get(MAP50, 0.0))
        if on_epoch is not None:
            on_epoch(trainer.epoch, metrics)

    def setup(trainer) -> None:
        # ultralytics loads CPU batches in the training process; we keep workers where the
        # device has cores to spare (it reset them to 0 for the CPU) and all threads for torch
        trainer.args.workers = workers
        torch.set_num_threads(device.threads)

    def model_saved(trainer) -> None:  # record what ultralytics wrote, for a later resume
        for path in (trainer.last, trainer.best):
            if Path(path).is_file():
                checkpoints.record(Path(path))

    if pretrained is not None:
        check_pretrained(pretrained)  # refuse a bad file before any work, with its name
    try:
        if resumed:
            checkpoints.verify(last)  # a planted last.pt is refused before ultralytics reads it
            model = YOLO(str(last))
            model.add_callback("on_fit_epoch_end", fit_epoch_end)
            _callbacks(model, fit_epoch_end, setup, model_saved)
            model.train(resume=True, workers=workers, device=device.ultralytics)
        else:
            model = YOLO(str(model_yaml), task="detect")
            _callbacks(model, fit_epoch_end, setup, model_saved)
            model.train(data=str(data_yaml), epochs=epochs, imgsz=imgsz, batch=batch, lr0=lr0,
                        optimizer="AdamW", seed=seed, deterministic=True, patience=patience,
                        device=device.ultralytics, workers=workers,
                        amp=device.kind == "cuda", plots=False, verbose=False,
                        pretrained=str(pretrained) if pretrained else False,
                        project=str(out_dir.parent), name=out_dir.name,
                        exist_ok=True, warmup_epochs=min(3.0, epochs / 5), val=True,
                        close_mosaic=max(1, epochs // 4), mosaic=mosaic)
    finally:
        bar.close()
    return {"history": read_history(out_dir), "best": out_dir / "weights" / "best.pt",
            "last": last, "resumed": resumed}


def _train_images(data_yaml: Path) -> int:
    """How many training images the data stage's data.yaml names (to size the loader)."""
    import yaml

    from tango_ci.data.layout import IMAGE_SUFFIXES

    try:
        content = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
        folder = Path(content["path"]) / content["train"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return 0
    return sum(1 for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _callbacks(model, fit_epoch_end, setup, model_saved) -> None:
    model.add_callback("on_fit_epoch_end", fit_epoch_end)
    model.add_callback("on_pretrain_routine_start", setup)
    model.add_callback("on_model_save", model_saved)
    model.add_callback("on_train_end", model_saved)  # after its final rewrite of both files


def read_history(out_dir: Path) -> list[dict]:
    path = out_dir / "results.csv"
    if not path.exists():
        return []
    with open(path) as handle:
        rows = [{k.strip(): float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    return [{"epoch": int(r["epoch"]) - 1, "map50": r.get(MAP50, 0.0),
             "map50_95": r.get(MAP50_95, 0.0), "box_loss": r.get("train/box_loss", 0.0),
             "cls_loss": r.get("train/cls_loss", 0.0), "val_box_loss": r.get("val/box_loss", 0.0),
             "precision": r.get("metrics/precision(B)", 0.0),
             "recall": r.get("metrics/recall(B)", 0.0)} for r in rows]
