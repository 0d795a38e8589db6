"""Build a profile sample with fresh weights and export it to ONNX (never downloaded weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from tango_ci.profiling.sample import CLASSES, ProfileSample


def _conv(inputs: int, outputs: int, kernel: int, stride: int = 1, groups: int = 1) -> list:
    return [
        nn.Conv2d(inputs, outputs, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(outputs),
    ]


class _Residual(nn.Module):
    def __init__(self, body: nn.Module, shortcut: nn.Module | None, activation: nn.Module):
        super().__init__()
        self.body, self.shortcut, self.activation = body, shortcut, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.activation(self.body(x) + identity)


class _Dense(nn.Module):
    def __init__(self, channels: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth),
            nn.ReLU(),
            nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


def block_module(spec: dict[str, Any]) -> nn.Module:
    """The block ``spec`` describes, behind a 1x1 stem from the image's three channels."""
    c, out, k, s = spec["channels"], spec["out"], spec["kernel"], spec["stride"]
    kind = spec["block"]
    if kind == "conv":
        block: nn.Module = nn.Sequential(*_conv(c, out, k, s), nn.ReLU())
    elif kind == "dwconv":
        block = nn.Sequential(*_conv(c, c, k, s, groups=c), nn.Hardswish())
    elif kind == "inverted":
        hidden = c * spec["expand"]
        body = nn.Sequential(
            *_conv(c, hidden, 1),
            nn.Hardswish(),
            *_conv(hidden, hidden, k, s, groups=hidden),
            nn.Hardswish(),
            *_conv(hidden, out, 1),
        )
        block = _Residual(body, None, nn.Identity()) if s == 1 and c == out else body
    elif kind == "basic":
        body = nn.Sequential(*_conv(c, out, 3, s), nn.ReLU(), *_conv(out, out, 3))
        shortcut = None if s == 1 and c == out else nn.Sequential(*_conv(c, out, 1, s))
        block = _Residual(body, shortcut, nn.ReLU())
    else:
        block = _Dense(c, out)
    return nn.Sequential(nn.Conv2d(3, c, 1), block).eval()


def _export(model: nn.Module, path: Path, size: int, batch: int) -> Path:
    from tango_ci.export import export_onnx

    export_onnx(model.eval(), path, (batch, 3, size, size), simplify=True)
    return path


def export_block(spec: dict[str, Any], folder: Path) -> Path:
    return _export(block_module(spec), folder / "model.onnx", spec["size"], spec["batch"])


def export_network(spec: dict[str, Any], folder: Path) -> Path:
    """A whole network as the search would export it, with ``model.json`` and ``best.pt``
    beside it for the PyTorch engine."""
    from tango_ci.jsonfiles import write_record

    classes = [f"c{i}" for i in range(CLASSES)]
    if spec["kind"] == "yolo":
        return _export_yolo(spec, folder, classes)
    if spec["kind"] == "family":
        from tango_ci.models import build_model, trained_model

        model = build_model(spec["family"], spec["level"], CLASSES)
        record = trained_model(
            "classification", spec["family"], spec["level"], classes, spec["size"]
        )
    else:
        from tango_ci.models import build_subnet, get_elastic_family, trained_subnet

        family = get_elastic_family(spec["family"])
        space = family.space(spec["size"], tuple(spec["resolutions"]))
        record = trained_subnet(
            "classification",
            spec["family"],
            spec["config"],
            space.describe(spec["config"]),
            classes,
            spec["size"],
            tuple(spec["resolutions"]),
        )
        model = build_subnet(record)
    torch.save(model.state_dict(), folder / "best.pt")
    write_record(folder, record)
    return _export(model, folder / "model.onnx", spec["size"], spec["batch"])


def _export_yolo(spec: dict[str, Any], folder: Path, classes: list[str]) -> Path:
    from tango_ci.detection.models import model_yaml, write_model_yaml
    from tango_ci.detection.search_space import LEVEL_TO_SCALE, export_yolo, trained_model
    from tango_ci.detection.weights import ultralytics_module
    from tango_ci.jsonfiles import write_record

    config = model_yaml(spec["family"], spec["scale"], spec["depth"], spec["width"], CLASSES)
    yaml_path = write_model_yaml(folder / "model.yaml", config)
    ultralytics_module().YOLO(str(yaml_path), task="detect").save(str(folder / "best.pt"))
    level = {scale: level for level, scale in LEVEL_TO_SCALE.items()}[spec["scale"]]
    params = {
        "family": spec["family"],
        "level": level,
        "depth": spec["depth"],
        "width": spec["width"],
        "imgsz": spec["size"],
    }
    write_record(folder, trained_model("detection", params, classes))
    return export_yolo(
        folder / "best.pt", folder / "model.onnx", spec["size"], opset=17, simplify=True
    )


def write_sample(sample: ProfileSample, folder: Path) -> tuple[Path, Path | None]:
    """Build ``sample`` with fresh weights and export it: its ONNX file, and the folder the
    PyTorch engine rebuilds it from (None for blocks, which no task can rebuild)."""
    folder.mkdir(parents=True, exist_ok=True)
    if sample.is_block:
        return export_block(sample.spec, folder), None
    return export_network(sample.spec, folder), folder
