"""Images to network inputs, as every engine and every deployment bundle takes them.

A pre-processing spec (``preprocess.json`` in a bundle) says how: ``resize`` (classification:
a square bilinear resize, then ``(x / 255 - mean) / std``) or ``letterbox`` (detection: keep
the aspect ratio, pad with grey 114, then ``x / 255``), RGB, NCHW float32.

Reading is for untrusted files: only the decoders of :data:`FORMATS` are used (Pillow otherwise
picks one by the file's content, and a ``.jpg`` that is really PostScript would run
Ghostscript on it), a file of another format is named as such (``a GIF file named .jpg``), the
image is turned upright by its EXIF orientation (phone photos; the data stage and the trainers
read them so), an image whose header declares more pixels than its limit is refused before it
is decoded (a 17 KB PNG can declare 144 million), and any file Pillow cannot decode is an
``ImageError`` with one line saying why. The limit is :data:`MAX_FILE_PIXELS` for a file read
by its path (a dataset's, or one ``predict`` reads: a 108 MP phone photograph is read) and
:data:`MAX_PIXELS` for one read from memory or a stream (a request ``serve`` answers, whose
pixel budget is sized by it).

Pixels are brought to 8 bits by a rule of their type, never by their range, so that every image
of a dataset is scaled alike (one bright pixel does not darken the rest; Pillow's own
``convert("RGB")`` clips these types to white or black): 16-bit images (modes ``I;16*``, and
32-bit integer images in memory, mode ``I``, which Pillow uses for 16-bit values) by the top
byte of 0..65535, as OpenCV reads them (below 0 black, above white); float images (mode ``F``)
as 0..1, the usual float convention (scaled by 255, then clipped to 0..255; NaN black,
infinities white or black). A file of 32-bit integers is refused, saying to save 8 or 16 bits
a sample: no fixed scale fits what such files hold (8-bit values, 16-bit sensor values and
full-range counts alike; Pillow saves every signed numpy array so), and OpenCV does not read
them at all.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

#: the most pixels an image read from memory or a stream may declare (a request ``serve``
#: answers; its pixel budget is twice this): 40 million (a 7300 x 5500 photograph) is about
#: 120 MB decoded as RGB
MAX_PIXELS = 40_000_000
#: the most pixels an image file read by its path may declare (a dataset's, or one ``predict``
#: reads): 120 million takes a 108 MP phone photograph (12000 x 9000), about 360 MB decoded as
#: RGB, and stays under Pillow's own refusal of a decompression bomb (179 million)
MAX_FILE_PIXELS = 120_000_000
#: the decoders an image may use, in the data stage and in a bundle alike (a model never
#: serves a format it could not have been trained on)
FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "TIFF")
#: the first bytes of formats Pillow is not let decode, to name what a refused file is
SIGNATURES = (
    (b"GIF87a", "a GIF"),
    (b"GIF89a", "a GIF"),
    (b"%PDF", "a PDF"),
    (b"%!PS", "a PostScript"),
    (b"\xc5\xd0\xd3\xc6", "an EPS"),
    (b"8BPS", "a Photoshop (PSD)"),
    (b"\x00\x00\x01\x00", "an ICO"),
    (b"\xff\x0a", "a JPEG XL"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "a JPEG XL"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "a JPEG 2000"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000"),
    (b"<svg", "an SVG"),
    (b"<?xml", "an XML"),
)
#: ISO base media files (``....ftyp`` and a brand): AVIF and HEIC/HEIF, as phones save them
BRANDS = {b"avif": "an AVIF", b"avis": "an AVIF", b"mif1": "a HEIF", b"msf1": "a HEIF"} | {
    brand: "a HEIC" for brand in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx")
}
#: the TIFF tag of the bits each sample has
_BITS_PER_SAMPLE = 258


def pixel_limit(source: Any) -> int:
    """The most pixels ``source`` may declare: :data:`MAX_FILE_PIXELS` for a path,
    :data:`MAX_PIXELS` for anything else (bytes in memory, a stream)."""
    return MAX_FILE_PIXELS if isinstance(source, (str, os.PathLike)) else MAX_PIXELS


def open_image(source: Any) -> Image.Image:
    """``source`` opened, not yet decoded, by Pillow's own ``Image.open`` with the
    :data:`FORMATS` decoders only; ``ImageTooLarge`` when it declares over its
    :func:`pixel_limit`, ``FormatRefused`` naming another format (or 32-bit integers).
    ultralytics, once imported, replaces ``Image.open`` with a version that installs a package
    (pi-heif) the first time a file is not identified; its saved original is used."""
    opener = Image.open
    if getattr(opener, "__module__", "").startswith("ultralytics"):
        patches = sys.modules.get("ultralytics.utils.patches")
        opener = getattr(patches, "_image_open", opener)
    limit = pixel_limit(source)
    try:
        image = _opened(opener, source, limit)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(_first_line(exc)) from None
    except UnidentifiedImageError:
        found = _other_format(source)
        if found is None:
            raise
        raise FormatRefused(
            f"{found}, not one of the accepted formats ({', '.join(FORMATS)})"
        ) from None
    width, height = image.size
    if width * height > limit:
        image.close()
        raise ImageTooLarge(f"{width}x{height} pixels is over the limit of {limit} pixels")
    if image.mode == "I" and _bits(image) == 32:
        image.close()
        raise FormatRefused(
            "a TIFF of 32-bit integers, which no fixed scale brings to 8 bits; save it with "
            "8 or 16 bits a sample (numpy uint8 or uint16)"
        )
    return image


def _opened(opener: Any, source: Any, limit: int) -> Image.Image:
    """``opener``'s image; Pillow's warning of a decompression bomb silenced where this
    module's own limit is above Pillow's (files read by path: warning filters are global, and
    ``serve``'s threads do not read paths)."""
    pillows = Image.MAX_IMAGE_PIXELS  # None: Pillow checks nothing
    if pillows is None or limit <= pillows:
        return opener(source, formats=FORMATS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return opener(source, formats=FORMATS)


def _bits(image: Image.Image) -> int | None:
    """The bits a sample of ``image``'s file has, where it says (TIFF)."""
    tags = getattr(image, "tag_v2", None)
    bits = tags.get(_BITS_PER_SAMPLE) if tags is not None else None
    return int(bits[0] if isinstance(bits, tuple) else bits) if bits else None


def _other_format(source: Any) -> str | None:
    """What ``source`` is by its first bytes, when a known format outside :data:`FORMATS`:
    ``a GIF file named .jpg``; None otherwise (or when it cannot be read again)."""
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as handle:
                head = handle.read(32)
        else:  # Pillow reads a stream from its start
            source.seek(0)
            head = source.read(32)
    except (OSError, AttributeError, ValueError):
        return None
    found = next((name for magic, name in SIGNATURES if head.startswith(magic)), None)
    if head[4:8] == b"ftyp":
        found = BRANDS.get(head[8:12], found)
    if found is None:
        return None
    if isinstance(source, (str, os.PathLike)):
        suffix = Path(source).suffix
        return f"{found} file" + (f" named {suffix}" if suffix else "")
    return f"{found} image"


SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


class ImageError(ValueError):
    """An image that cannot be read, or is refused; the message is one line."""


class ImageTooLarge(ImageError):
    """An image that declares more pixels than its limit."""


class FormatRefused(ImageError):
    """A file of a format the decoders of :data:`FORMATS` do not read, or 32-bit integers."""


def read_rgb(source: Any) -> np.ndarray:
    """A file path, file object or PIL image as uint8 HWC RGB; an ``ImageError`` for a file
    that is not an image Pillow can decode, or is refused (:func:`open_image`)."""
    if isinstance(source, Image.Image):
        return _rgb(source)
    try:
        opened = Path(source) if isinstance(source, str) else source
        with open_image(opened) as image:
            image.load()
            return _rgb(upright(image))
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:  # one that grew while it was decoded
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
    """uint8 HWC RGB of any mode, by a rule of the mode (the module's docstring): 16-bit and
    32-bit integers by the top byte of 0..65535, floats as 0..1, the rest by Pillow's
    conversion."""
    if image.mode in SIXTEEN_BIT_MODES or image.mode == "I":
        grey = (np.clip(np.asarray(image), 0, 65535) >> 8).astype(np.uint8)
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float32) * np.float32(255.0)
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
