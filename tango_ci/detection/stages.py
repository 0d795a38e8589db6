"""Train and export stages for detection (data: data_stage.py; search: the shared stage)."""

from __future__ import annotations

import shutil
from typing import Any

import numpy as np

from tango_ci.context import StageContext
from tango_ci.contracts import TrainedModel
from tango_ci.detection.search_space import (
    LEVEL_TO_SCALE,
    calibration_images,
    export_yolo,
    preprocess_detection,
    trained_model,
)
from tango_ci.report.plots import training_curves
from tango_ci.rundir import read_json, read_record, write_json, write_record

PARITY_IMAGES = 8


def train(ctx: StageContext) -> None:
    from tango_ci.detection.models import model_yaml, write_model_yaml
    from tango_ci.detection.train import train_yolo
    from tango_ci.train.device import device_for
    from tango_ci.train.stage import pretrained_path
    from tango_ci.train.trainer import set_threads

    spec, folder = ctx.spec, ctx.folder
    set_threads()
    device = device_for(spec)
    ctx.reporter.log(f"training on {device.name} ({device.precision})")
    ctx.run.require("train", "search", "the chosen candidate")
    choice = read_json(ctx.run.stage_dir("search") / "best.json")
    params = choice["params"]
    classes = read_json(ctx.run.stage_dir("data") / "classes.json")
    config = model_yaml(
        params["family"],
        LEVEL_TO_SCALE[params["level"]],
        params["depth"],
        params["width"],
        len(classes),
    )
    yaml_path = write_model_yaml(folder / "model.yaml", config)
    result = train_yolo(
        yaml_path,
        ctx.run.stage_dir("data") / "data.yaml",
        folder / "ultralytics",
        epochs=spec.train.epochs,
        imgsz=params["imgsz"],
        batch=params.get("batch", spec.train.batch),
        lr0=params.get("lr", spec.train.lr),
        seed=spec.search.seed,
        patience=spec.train.patience,
        reporter=ctx.reporter,
        pretrained=pretrained_path(spec) if spec.train.pretrained else None,
        device=device,
        description=f"training {choice['architecture']}",
    )
    if result["resumed"]:
        ctx.reporter.log("resumed training from its last checkpoint")
    shutil.copy2(result["best"], folder / "best.pt")
    history = result["history"]
    # the epoch ultralytics saved as best.pt (its fitness; a later tie wins), so the recorded
    # quality belongs to the weights that are exported
    best = (
        history[result["best_epoch"]]
        if result.get("best_epoch") is not None
        else max(reversed(history), key=lambda h: h["map50_95"])
    )
    info = trained_model(
        spec.task, params, classes, parameters=choice.get("parameters"), trial=choice["number"]
    )
    write_record(folder, info)
    write_json(folder / "history.json", history)
    metrics = {
        "val_map50": best["map50"],
        "val_map50_95": best["map50_95"],
        "best_epoch": best["epoch"],
        "epochs_run": len(history),
        "stopped_early": len(history) < spec.train.epochs,
        "resumed_from_epoch": None,
        # ultralytics' validation of best.pt itself, and how it measures: it pads
        # batches and keeps several classes per box, so bench's mAP50 differs a little
        "final": result.get("final"),
        "validation": result.get("validation"),
    }
    write_json(folder / "metrics.json", metrics)
    training_curves(
        history,
        {"train box": "box_loss", "train cls": "cls_loss", "val box": "val_box_loss"},
        {"mAP50": "map50", "mAP50-95": "map50_95"},
        "validation mAP",
        folder / "curves.png",
    )
    for name in ("best.pt", "model.json", "history.json", "metrics.json", "curves.png"):
        ctx.recorder.output_file(name.split(".")[0], folder / name)
    ctx.recorder.summary.update(
        {
            "val_map50": best["map50"],
            "epochs": len(history),
            "architecture": info.architecture,
            "device": device.describe(),
        }
    )


def load_yolo_module(folder):
    """The trained network as a torch module whose first output is the raw head output."""
    from tango_ci.detection.weights import ultralytics_module

    model = ultralytics_module().YOLO(str(folder / "best.pt"), task="detect")
    return model.model.float().eval()


def export(ctx: StageContext) -> None:
    import torch

    from tango_ci.detection.data_stage import load_val

    spec, folder = ctx.spec, ctx.folder
    ctx.run.require("export", "train", "trained weights")
    train_dir = ctx.run.stage_dir("train")
    info = read_json(train_dir / "model.json")
    path = export_yolo(
        train_dir / "best.pt",
        folder / "model.onnx",
        info["image_size"],
        opset=spec.export.opset,
        simplify=spec.export.simplify,
    )
    images, _, _ = load_val(ctx.run)
    batch = preprocess_detection(resize_to(images[:PARITY_IMAGES], info["image_size"]))
    module = load_yolo_module(train_dir)
    with torch.no_grad():
        expected = module(torch.from_numpy(batch))
    expected = (expected[0] if isinstance(expected, (tuple, list)) else expected).numpy()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    actual = session.run(None, {session.get_inputs()[0].name: batch})[0]
    check = parity_check(expected, actual, batch.shape[2], batch.shape[3], spec.export.tolerance)
    write_json(folder / "parity.json", check)
    ctx.recorder.input_file("weights", train_dir / "best.pt")
    ctx.recorder.output_file("onnx", path)
    ctx.recorder.output_file("parity", folder / "parity.json")
    ctx.recorder.summary.update(
        {
            "opset": spec.export.opset,
            "parity": check,
            "input_shape": [1, 3, info["image_size"], info["image_size"]],
        }
    )


def parity_check(
    expected: np.ndarray, actual: np.ndarray, height: int, width: int, tolerance: float
) -> dict:
    """Compare two raw head outputs with ``export.tolerance`` as the absolute difference it is
    documented to be, box coordinates divided by the input's width and height first.

    In pixels, coordinates and their fp32 rounding grow with the input size; as fractions of
    it the same tolerance means the same everywhere (1e-4 is 0.064 px at 640, far below what
    moves an IoU). Class scores are compared as they are. Raises :class:`ParityError` beyond
    ``tolerance``; returns the differences otherwise.
    """
    from tango_ci.detection.postprocess import normalise_boxes
    from tango_ci.export import ParityError

    difference = np.abs(
        normalise_boxes(expected, height, width) - normalise_boxes(actual, height, width)
    )
    check: dict[str, Any] = {
        "max_abs": float(difference.max()),
        "mean_abs": float(difference.mean()),
        "max_abs_raw": float(np.abs(expected.astype(np.float64) - actual).max()),
        "tolerance": tolerance,
        "images": len(expected),
        "compared": "box coordinates as fractions of the input width and height, "
        "class scores as they are",
    }
    if not check["max_abs"] <= tolerance:  # NaN in either output fails too
        raise ParityError(
            f"the ONNX model differs from PyTorch by up to {check['max_abs']:.3g} (mean "
            f"{check['mean_abs']:.3g}) in boxes as fractions of the input size and in scores "
            f"(raw outputs, boxes in pixels: {check['max_abs_raw']:.3g}), more than the tolerance "
            f"{tolerance:g} of export.tolerance",
            **check,
        )
    return check


def resize_to(images: np.ndarray, size: int) -> np.ndarray:
    """Validation images were letterboxed to the data's size; the model may use another."""
    if images.shape[1] == size:
        return images
    from tango_ci.data.yolo import letterbox

    return np.stack([letterbox(image, size)[0] for image in images])


def calibration_for(ctx: StageContext, count: int) -> np.ndarray:
    info = read_record(TrainedModel, ctx.run.stage_dir("train"))
    return calibration_images(
        ctx.run.stage_dir("data") / "data.yaml", info.image_size, count, ctx.spec.search.seed
    )


__all__ = ["calibration_for", "export", "load_yolo_module", "train"]
