"""The deployment path under a probe: images as users send them (32-bit integer and float
images by their values), and ``serve`` on loopback with requests a proxy and a server could
read differently (a body framed by Transfer-Encoding as well as Content-Length, two
Content-Lengths) or tensors whose fields are of the wrong kind. The bundle is made by hand
(a three-output average-pooling network), so each test takes milliseconds."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tango_ci.runtime.images import read_rgb

SIZE = 8
GRADIENT = np.arange(256, dtype=np.uint8).reshape(16, 16)


def _saved(image: Image.Image, kind: str = "TIFF") -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, kind)
    buffer.seek(0)
    return buffer


# ---------------------------------------------------------------------------- images
def test_a_32_bit_integer_image_of_8_bit_values_reads_as_its_8_bit_version() -> None:
    """A TIFF saved from a numpy int32 array of 0..255 read black (its top 16-bit byte)."""
    eight = read_rgb(_saved(Image.fromarray(GRADIENT)))
    as_int32 = _saved(Image.fromarray(GRADIENT.astype(np.int32)))
    assert Image.open(as_int32).mode == "I"
    np.testing.assert_array_equal(read_rgb(as_int32), eight)
    signed_16 = _saved(Image.fromarray(GRADIENT.astype(np.int16) - 100))  # also mode "I"
    np.testing.assert_array_equal(
        read_rgb(signed_16)[:, :, 0], np.clip(GRADIENT.astype(int) - 100, 0, 255)
    )


def test_a_32_bit_integer_image_beyond_16_bits_is_scaled_not_white() -> None:
    wide = GRADIENT.astype(np.int64) * (2**31 - 1) // 255
    np.testing.assert_array_equal(
        read_rgb(_saved(Image.fromarray(wide.astype(np.int32))))[:, :, 0], GRADIENT
    )
    sixteen = GRADIENT.astype(np.int32) * 257  # still read by its 16-bit top byte
    np.testing.assert_array_equal(read_rgb(_saved(Image.fromarray(sixteen)))[:, :, 0], GRADIENT)


def test_one_infinite_pixel_does_not_turn_a_0_1_float_image_black() -> None:
    values = GRADIENT.astype(np.float32) / 255
    values[0, 0], values[0, 1], values[0, 2] = np.inf, -np.inf, np.nan
    read = read_rgb(_saved(Image.fromarray(values)))[:, :, 0]
    assert read[0, :3].tolist() == [255, 0, 0]
    np.testing.assert_array_equal(read.ravel()[3:], GRADIENT.ravel()[3:])
