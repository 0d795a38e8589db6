"""Images to network inputs, as every engine and every deployment bundle takes them.

A pre-processing spec (``preprocess.json`` in a bundle) says how: ``resize`` (classification:
a square bilinear resize, then ``(x / 255 - mean) / std``) or ``letterbox`` (detection: keep
the aspect ratio, pad with grey 114, then ``x / 255``), RGB, NCHW float32.

Reading is for untrusted files: only the decoders of :data:`FORMATS` are used (Pillow otherwise
picks one by the file's content, and a ``.jpg`` that is really PostScript would run
Ghostscript on it), the image is turned upright by its EXIF orientation (phone photos; the
data stage and the trainers read them so), an image whose header declares more than ``MAX_PIXELS``
pixels is refused before it is decoded (a 17 KB PNG can declare 144 million), and any file
Pillow cannot decode is an ``ImageError`` with one line saying why. 16-bit grey images are
brought to 8 bits by their top byte (as OpenCV reads them), 32-bit integer images (mode ``I``,
whose bit depth Pillow does not keep) by their range (0..255 as they are, up to 65535 by the
top byte of 16 bits, beyond by that of 31), and float images (finite values within 0..1 are
scaled by 255, else clipped to 0..255), instead of Pillow's ``convert("RGB")``, which clips
them to white or black.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

#: the most pixels an image may declare: 40 million (a 7300 x 5500 photograph) is about
#: 120 MB decoded as RGB
MAX_PIXELS = 40_000_000
#: the decoders an image may use, in the data stage and in a bundle alike (a model never
#: serves a format it could not have been trained on)
FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "TIFF")


def open_image(source: Any) -> Image.Image:
    """``source`` opened, not yet decoded, by Pillow's own ``Image.open`` with the
    :data:`FORMATS` decoders only; ``ImageTooLarge`` when it declares over ``MAX_PIXELS``
    pixels. ultralytics, once imported, replaces ``Image.open`` with a version that installs a
    package (pi-heif) the first time a file is not identified; its saved original is used."""
    opener = Image.open
    if getattr(opener, "__module__", "").startswith("ultralytics"):
        patches = sys.modules.get("ultralytics.utils.patches")
        opener = getattr(patches, "_image_open", opener)
    image = opener(source, formats=FORMATS)
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise ImageTooLarge(f"{width}x{height} pixels is over the limit of {MAX_PIXELS} pixels")
    return image


SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


class ImageError(ValueError):
    """An image that cannot be read, or is refused; the message is one line."""


class ImageTooLarge(ImageError):
    """An image that declares more pixels than ``MAX_PIXELS``."""


def read_rgb(source: Any) -> np.ndarray:
    """A file path, file object or PIL image as uint8 HWC RGB; an ``ImageError`` for a file
    that is not an image Pillow can decode or declares over ``MAX_PIXELS`` pixels."""
    if isinstance(source, Image.Image):
        return _rgb(source)
    try:
        opened = Path(source) if isinstance(source, str) else source
        with open_image(opened) as image:
            image.load()
            return _rgb(upright(image))
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{_first_line(exc)}") from None
    except Exception as exc:  # Pillow's decoders raise many kinds; all mean "not readable"
        raise ImageError(
            f"not an image Pillow can read ({type(exc).__name__}: {_first_line(exc)})"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0][:200] if text else ""


def upright(image: Image.Image) -> Image.Image:
    """``image`` turned by its EXIF orientation (as ultralytics and OpenCV read it); as it is
    when that cannot be read."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block in a good image: the pixels still count
        return image


def _rgb(image: Image.Image) -> np.ndarray:
    """uint8 HWC RGB of any mode: 16-bit grey by its top byte, 32-bit integers and floats
    by their range, the rest by Pillow's conversion."""
    if image.mode in SIXTEEN_BIT_MODES:
        grey = (np.clip(np.asarray(image).astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
    elif image.mode == "I":
        # a 32-bit TIFF saved from numpy holding 0..255 would otherwise read black
        integers = np.clip(np.asarray(image).astype(np.int64), 0, 2**31 - 1)
        top = int(integers.max()) if integers.size else 0
        grey = (integers >> (0 if top <= 255 else 8 if top <= 65535 else 23)).astype(np.uint8)
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float32)
        finite = values[np.isfinite(values)]
        # one infinite pixel must not decide the range of the others
        if finite.size and finite.max() <= 1.0:
            values = values * 255.0
        values = np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0)
        grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    else:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


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
    # at least one pixel a side: a 20000 x 1 strip would round its height to 0
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
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
