"""YOLO families built from ultralytics' model YAML (never from downloaded weights), with the
standard scales and continuous depth and width multipliers on top of them."""

from __future__ import annotations

from pathlib import Path

import yaml

from tango_ci.exceptions import UnknownNameError

FAMILIES = {"yolov8": "yolov8.yaml", "yolo11": "yolo11.yaml", "yolo26": "yolo26.yaml"}
SCALES = ("n", "s", "m", "l", "x")


def model_yaml(
    family: str, scale: str, depth: float = 1.0, width: float = 1.0, classes: int = 80
) -> dict:
    """The family's YAML with one scale picked and its depth and width multiplied."""
    from tango_ci.detection.weights import ultralytics_module

    if family not in FAMILIES:
        raise UnknownNameError(kind="detection family", name=family, valid=", ".join(FAMILIES))
    if scale not in SCALES:
        raise UnknownNameError(kind="scale", name=scale, valid=", ".join(SCALES))
    tasks = ultralytics_module("ultralytics.nn.tasks")
    config = tasks.yaml_model_load(FAMILIES[family])
    base_depth, base_width, max_channels = config["scales"][scale]
    config.pop("scales")
    config.update(
        {
            "depth_multiple": round(base_depth * depth, 4),
            "width_multiple": round(base_width * width, 4),
            "max_channels": max_channels,
            "nc": classes,
        }
    )
    config.pop("yaml_file", None)
    config.pop("scale", None)
    return config


def write_model_yaml(path: Path, config: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def build(config_path: Path):
    """An ultralytics YOLO object for the YAML at ``config_path``."""
    from tango_ci.detection.weights import ultralytics_module

    return ultralytics_module().YOLO(str(config_path), task="detect")
