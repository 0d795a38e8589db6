"""Images to network inputs, as every engine and every deployment bundle takes them.

A pre-processing spec (``preprocess.json`` in a bundle) says how: ``resize`` (classification:
a square bilinear resize, then ``(x / 255 - mean) / std``) or ``letterbox`` (detection: keep
the aspect ratio, pad with grey 114, then ``x / 255``), RGB, NCHW float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def read_rgb(source: Any) -> np.ndarray:
    """A file path, file object or PIL image as uint8 HWC RGB (Pillow refuses decompression
    bombs: images of over 179 million pixels)."""
    if isinstance(source, Image.Image):
        return np.asarray(source.convert("RGB"), dtype=np.uint8)
    with Image.open(Path(source) if isinstance(source, str) else source) as image:
        image.load()
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize to ``size`` x ``size`` (the classification data stage's)."""
    if image.shape[:2] == (size, size):
        return image
    resized = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping the aspect ratio and pad to ``size`` (grey 114, as ultralytics does);
    the image, its scale and the (left, top) padding."""
    height, width = image.shape[:2]
    scale = min(size / height, size / width)
    new_w, new_h = round(width * scale), round(height * scale)
    resized = (
        np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR))
        if (new_w, new_h) != (width, height)
        else image
    )
    canvas = np.full((size, size, 3), 114, np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas, scale, (left, top)


def normalise(images: np.ndarray, mean: float, std: float) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW, ``(x / 255 - mean) / std``."""
    x = images.astype(np.float32) / 255.0
    return np.ascontiguousarray(((x - mean) / std).transpose(0, 3, 1, 2))


def unit_scale(images: np.ndarray) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW in 0..1 (how ultralytics feeds its detectors)."""
    return np.ascontiguousarray(images.astype(np.float32).transpose(0, 3, 1, 2) / 255.0)


def fit(image: np.ndarray, spec: dict) -> tuple[np.ndarray, dict]:
    """One decoded image brought to the network's size by ``spec``, and how (for mapping
    boxes back to the original image)."""
    size = int(spec["size"])
    if spec["kind"] == "letterbox":
        boxed, scale, (left, top) = letterbox(image, size)
        return boxed, {"scale": scale, "left": left, "top": top}
    return resize_square(image, size), {
        "scale_x": size / image.shape[1],
        "scale_y": size / image.shape[0],
    }


def to_input(images: np.ndarray, spec: dict) -> np.ndarray:
    """Fitted uint8 NHWC images as the network's float input, by ``spec``."""
    if spec["kind"] == "letterbox":
        return unit_scale(images)
    return normalise(images, float(spec["mean"]), float(spec["std"]))
