"""Synthetic detection data in the ultralytics YOLO layout: several shapes per image, with
random sizes, colours, positions and overlaps on noisy backgrounds, and their boxes.

    out/data.yaml
    out/images/{train,val}/NNNNN.png
    out/labels/{train,val}/NNNNN.txt   (class cx cy w h, normalised to 0..1)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

from tango_ci.data.synth import _background, _colour_far_from, draw_shape, polygon


def _box(shape: str, cx: float, cy: float, radius: float, angle: float) -> tuple[float, ...]:
    if shape == "circle":
        return cx - radius, cy - radius, cx + radius, cy + radius
    points = polygon(shape, cx, cy, radius, angle)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def detection_image(
    rng: np.random.Generator, classes: tuple[str, ...], size: int, max_objects: int
) -> tuple[Image.Image, list[tuple]]:
    """One image and its labels (class index, cx, cy, w, h normalised)."""
    pixels, background = _background(rng, size)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    labels = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        index = int(rng.integers(len(classes)))
        radius = rng.uniform(0.06, 0.16) * size
        cx, cy = rng.uniform(radius, size - radius, size=2)
        angle = rng.uniform(0, 2 * math.pi)
        draw_shape(draw, classes[index], cx, cy, radius, angle, _colour_far_from(rng, background))
        x1, y1, x2, y2 = (
            min(max(v, 0.0), size) for v in _box(classes[index], cx, cy, radius, angle)
        )
        labels.append(
            (index, (x1 + x2) / 2 / size, (y1 + y2) / 2 / size, (x2 - x1) / size, (y2 - y1) / size)
        )
    return image, labels


def write_detection_dataset(
    staging: Path,
    *,
    classes: tuple[str, ...],
    images: int,
    size: int,
    seed: int,
    val_fraction: float = 0.2,
    max_objects: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write the dataset into ``staging`` (the caller moves it into place)."""
    rng = np.random.default_rng(seed)
    n_val = max(1, round(images * val_fraction))
    for index in range(images):
        split = "val" if index < n_val else "train"
        image, labels = detection_image(rng, classes, size, max_objects)
        for kind in ("images", "labels"):
            (staging / kind / split).mkdir(parents=True, exist_ok=True)
        image.save(staging / "images" / split / f"{index:05d}.png")
        (staging / "labels" / split / f"{index:05d}.txt").write_text(
            "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in labels)
        )
        if progress:
            progress(index + 1, images)
    # no "path": ultralytics would resolve a relative one against its own datasets folder
    (staging / "data.yaml").write_text(
        yaml.safe_dump(
            {
                "train": "images/train",
                "val": "images/val",
                "names": {i: name for i, name in enumerate(classes)},
            },
            sort_keys=False,
        )
    )
