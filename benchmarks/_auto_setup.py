"""What auto_optimise.py builds its comparison from: the glyph set, the trained networks,
onnxruntime's own static quantisation and Olive (run in its own virtualenv)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
from _common import ROOT

from tango_ci.data.dataset import preprocess
from tango_ci.export.onnx_export import INPUT_NAME
from tango_ci.rundir import file_sha256, write_json

WORK = ROOT / "benchmarks" / "results" / ".auto-work"
SIZE, CLASSES = 224, 10
MODELS = {  # name -> our family and level that is that torchvision network
    "resnet18": ("resnet", "l"),
    "densenet121": ("densenet", "xl"),
    "mobilenetv3": ("mobilenetv3", "xl"),
}
SPLITS = {"train": 1000, "val": 400, "test": 600}
GOAL_DROP = 0.01
#: networks are trained at this size (4x cheaper) for all but the last FULL_SIZE_EPOCHS, which
#: adapt them to the deployed 224 px (a network trained at 112 only scored 0.34 at 224)
TRAIN_SIZE = 112
FULL_SIZE_EPOCHS = 2


class Log:
    def log(self, message: str) -> None:
        print(message, flush=True)


def dataset() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The glyph set at 224 px (uint8 NHWC), made once and cached."""
    from tango_ci.data.synth_glyphs import GLYPHS, GlyphLook, glyph_image

    # plainer than the project's glyphs (no distractors, milder rotation): networks trained
    # from scratch for a few epochs on a CPU must learn it well for drops to mean something
    look = GlyphLook(distractors=0, rotation=15.0, styles=(0.9, 0.05, 0.05))
    path = WORK / "glyphs-224-plain.npz"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        arrays = {}
        for split, count in SPLITS.items():
            labels = np.arange(count) % CLASSES
            images = np.stack([np.asarray(glyph_image(rng, GLYPHS[c], SIZE, look)) for c in labels])
            arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
        np.savez(path, **arrays)
    with np.load(path) as data:
        return {s: (data[f"{s}_images"], data[f"{s}_labels"]) for s in SPLITS}


def train(name: str, data: dict, epochs: int) -> Path:
    """``name`` trained on the training split (cached): a folder with best.pt."""
    import torch

    from tango_ci.models import build_model

    folder = WORK / name / "weights"
    if (folder / "best.pt").exists():
        return folder
    family, level = MODELS[name]
    torch.manual_seed(0)
    model = build_model(family, level, CLASSES)
    for module in model.modules():  # torchvision's MobileNetV3 uses 0.01: too slow for 3 epochs
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.1
    images, labels = data["train"]
    full = torch.from_numpy(preprocess(images))
    small = torch.nn.functional.interpolate(full, size=TRAIN_SIZE, mode="bilinear", antialias=True)
    y = torch.from_numpy(labels).long()
    optimiser = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=1e-4)
    start = time.time()
    # most epochs at half size (4x cheaper on a CPU), the last ones at the deployed size
    for epoch in range(epochs):
        x = small if epoch < epochs - FULL_SIZE_EPOCHS else full
        if x is full:
            for group in optimiser.param_groups:
                group["lr"] = 2e-4
        model.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), 32):
            batch = order[i : i + 32]
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        print(
            f"  {name} epoch {epoch + 1}/{epochs} at {x.shape[-1]} px: loss {loss.item():.3f} "
            f"({time.time() - start:.0f} s)",
            flush=True,
        )
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.eval().state_dict(), folder / "best.pt")
    val_images, val_labels = data["val"]
    with torch.no_grad():
        logits = torch.cat(
            [model(torch.from_numpy(preprocess(val_images[i : i + 50]))) for i in range(0, 400, 50)]
        )
    accuracy = float((logits.argmax(1).numpy() == val_labels).mean())
    print(f"  {name}: validation accuracy at {SIZE} px {accuracy:.3f}", flush=True)
    return folder


def wrap(onnx_path: Path, folder: Path, note: str) -> Path:
    """An onnxruntime artifact folder around a foreign ONNX file (onnxruntime's, Olive's)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, folder / "model.onnx")
    write_json(
        folder / "artifact.json",
        {
            "engine": "onnxruntime",
            "precision": "int8",
            "file": "model.onnx",
            "sha256": file_sha256(folder / "model.onnx"),
            "bytes": (folder / "model.onnx").stat().st_size,
            "providers": ["CPUExecutionProvider"],
            "note": note,
        },
    )
    return folder


def ort_static(onnx_path: Path, calibration: np.ndarray, folder: Path, recommended: bool) -> Path:
    """onnxruntime's own static quantisation: its defaults, or its advice for VNNI x86."""
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static

    class Reader:
        def __init__(self) -> None:
            self.batches = iter(
                [{INPUT_NAME: calibration[i : i + 8]} for i in range(0, len(calibration), 8)]
            )

        def get_next(self):
            return next(self.batches, None)

    folder.mkdir(parents=True, exist_ok=True)
    prepared, out = folder / "prepared.onnx", folder / "quantized.onnx"
    quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
    options = (
        {
            "quant_format": QuantFormat.QOperator,
            "per_channel": True,
            "activation_type": QuantType.QUInt8,
            "weight_type": QuantType.QInt8,
        }
        if recommended
        else {}
    )
    quantize_static(str(prepared), str(out), Reader(), **options)
    note = (
        "quantize_static U8S8 per-channel QOperator" if recommended else "quantize_static defaults"
    )
    return wrap(out, folder / "artifact", note)


def olive(args, onnx_path: Path, calibration, val, folder: Path) -> tuple[Path | None, dict]:
    """Olive's CPU optimisation in its own virtualenv; (artifact, what happened)."""
    python = args.olive_python
    if python is None or not Path(python).exists():
        return None, {
            "error": "not run: no --olive-python virtualenv with olive-ai (see "
            "benchmarks/README.md for how to make one)"
        }
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "calibration.npz", images=calibration)
    np.savez(folder / "validation.npz", images=preprocess(val[0]), labels=val[1])
    command = [
        str(python),
        str(ROOT / "benchmarks" / "_olive_runner.py"),
        "--model",
        str(onnx_path),
        "--calibration",
        str(folder / "calibration.npz"),
        "--validation",
        str(folder / "validation.npz"),
        "--out",
        str(folder / "out"),
        "--max-drop",
        str(GOAL_DROP),
    ]
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    report_path = folder / "out" / "olive.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    report["seconds"] = round(time.time() - started, 1)
    if done.returncode != 0 or not (folder / "out" / "model.onnx").exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        report.setdefault("error", tail[0][:300])
        return None, report
    return wrap(folder / "out" / "model.onnx", folder / "artifact", "Olive"), report
