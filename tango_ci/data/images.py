"""Decoding dataset images safely and as the trainers see them.

Only the formats the data stage accepts by suffix are opened: Pillow otherwise picks a decoder
from the file's content, and a ``.jpg`` that is really PostScript would run Ghostscript on
untrusted data; a file of another format is named as such (``a GIF file named .jpg``). Images
over :data:`MAX_IMAGE_BYTES` bytes or the runtime's ``MAX_FILE_PIXELS`` (a 108 MP photograph
is read) are refused before decoding. Pixels come out as ultralytics and OpenCV read them: rotated by the
EXIF orientation (phone photos), and 16-bit or float images scaled to 8 bits by the
deployment runtime's conversion (a rule of their type, never of their range; a TIFF of 32-bit
integers is refused, saying to save 8 or 16 bits a sample).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tango_ci.data.files import MAX_IMAGE_BYTES, regular_size
from tango_ci.runtime.images import (
    open_image,
    read_rgb,
    upright,
)


def check_image(path: Path) -> tuple[int, int]:
    """Decode ``path`` fully (a truncated file fails here, not in a later stage) and return
    its width and height; raises for anything unreadable or refused."""
    with _opened(path) as image:
        image.load()
        return image.size


def read_image(path: Path) -> np.ndarray:
    """An image file as uint8 HWC RGB, upright by its EXIF orientation, converted as the
    deployment runtime converts (16-bit and float images scaled, not clipped); raises for
    anything unreadable or refused."""
    with _opened(path) as image:
        image.load()
        return read_rgb(upright(image))


def _opened(path: Path) -> Image.Image:
    """``path`` opened by an allowed decoder, its size and declared pixels within limits."""
    regular_size(path, MAX_IMAGE_BYTES)
    return open_image(path)
