"""How the bundle runtime reads images: 16-bit and float images by their values (Pillow's own
RGB conversion clips them to white or black), an image that declares too many pixels refused
before it is decoded, and a letterbox of any aspect ratio."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError, features

from tango_ci.runtime.images import (
    MAX_FILE_PIXELS,
    MAX_PIXELS,
    FormatRefused,
    ImageError,
    ImageTooLarge,
    fit,
    open_image,
    pixel_limit,
    read_rgb,
    to_input,
)

RESIZE = {"kind": "resize", "size": 8, "mean": 0.5, "std": 0.5}
LETTERBOX = {"kind": "letterbox", "size": 16}


def _saved(image: Image.Image, kind: str) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, kind)
    buffer.seek(0)
    return buffer


def _network_input(source: io.BytesIO, spec: dict) -> np.ndarray:
    fitted, _ = fit(read_rgb(source), spec)
    return to_input(fitted[None], spec)


GRADIENT = np.arange(256, dtype=np.uint8).reshape(16, 16)


@pytest.mark.parametrize("kind", ["PNG", "TIFF"])
def test_a_16_bit_gradient_gives_the_input_of_its_8_bit_version(kind: str) -> None:
    sixteen = Image.fromarray(GRADIENT.astype(np.uint16) * 257)  # 0..65535
    assert sixteen.mode == "I;16"
    eight = _saved(Image.fromarray(GRADIENT), kind)
    for spec in (RESIZE, LETTERBOX):
        expected = _network_input(eight, spec)
        eight.seek(0)
        np.testing.assert_array_equal(_network_input(_saved(sixteen, kind), spec), expected)
    as_int32 = Image.fromarray(GRADIENT.astype(np.int32) * 257)  # mode "I"
    np.testing.assert_array_equal(read_rgb(as_int32)[:, :, 0], GRADIENT)


def test_a_float_image_is_scaled_from_0_1_and_clipped() -> None:
    unit = Image.fromarray(GRADIENT.astype(np.float32) / 255)
    assert unit.mode == "F"
    np.testing.assert_array_equal(
        read_rgb(_saved(unit, "TIFF")), read_rgb(Image.fromarray(GRADIENT).convert("RGB"))
    )
    wide = Image.fromarray(GRADIENT.astype(np.float32) / 100 - 1)  # -1..1.55: 0..1 still scaled
    np.testing.assert_array_equal(
        read_rgb(_saved(wide, "TIFF"))[:, :, 1],
        np.clip(np.rint((GRADIENT.astype(np.float32) / 100 - 1) * 255), 0, 255),
    )


def test_one_pixel_out_of_range_does_not_change_how_the_others_read() -> None:
    """Images of one dataset are scaled by a rule of their type, never by their own range:
    one float pixel above 1 turned a 0..0.9 image black (mean 0.5), one 16-bit pixel of 256
    in a 0..255 image of 32-bit integers did the same."""
    floats = (np.arange(150, dtype=np.float32).reshape(10, 15) + 100) / 249 * 0.9
    bright = floats.copy()
    bright[0, 0] = 1.001
    read = read_rgb(_saved(Image.fromarray(bright), "TIFF"))[:, :, 0]
    assert read[0, 0] == 255
    np.testing.assert_array_equal(read.ravel()[1:], np.rint(floats.ravel()[1:] * 255))
    sixteen = np.arange(150, dtype=np.int32).reshape(10, 15) * 400  # in memory: mode "I"
    brighter = sixteen.copy()
    brighter[0, 0] = 2**20  # above 16 bits: white, the rest as they were
    np.testing.assert_array_equal(
        read_rgb(Image.fromarray(brighter))[:, :, 0].ravel()[1:],
        (sixteen.ravel()[1:] >> 8).astype(np.uint8),
    )
    assert read_rgb(Image.fromarray(brighter))[0, 0, 0] == 255


def test_a_tiff_of_32_bit_integers_is_refused_whatever_its_values() -> None:
    """No fixed scale fits what such files hold (Pillow saves every signed numpy array so):
    8-bit values read black by a 16-bit rule, 16-bit ones white by an 8-bit one."""
    for top in (249, 256, 65535, 2**31 - 1):
        values = np.linspace(0, top, 150).astype(np.int32).reshape(10, 15)
        with pytest.raises(FormatRefused, match=r"^a TIFF of 32-bit integers, .* 8 or 16 bits"):
            read_rgb(_saved(Image.fromarray(values), "TIFF"))


def test_a_phone_photo_of_50_megapixels_is_read_from_a_file_not_from_a_request(
    tmp_path: Path,
) -> None:
    """An ordinary 50 MP photograph (8160 x 6120) was refused by the data stage; a served
    request keeps the server's own bound."""
    photo = tmp_path / "phone.jpg"
    Image.new("RGB", (8160, 6120), (90, 120, 150)).save(photo, quality=50)
    assert pixel_limit(photo) == MAX_FILE_PIXELS >= 108_000_000  # a 108 MP photograph too
    assert read_rgb(photo).shape == (6120, 8160, 3)
    assert pixel_limit(io.BytesIO()) == MAX_PIXELS == 40_000_000
    with pytest.raises(ImageTooLarge, match=r"^8160x6120 pixels is over the limit of 40000000"):
        read_rgb(io.BytesIO(photo.read_bytes()))


@pytest.mark.parametrize(("kind", "what"), [("GIF", "a GIF"), ("AVIF", "an AVIF")])
def test_another_format_named_jpg_is_named_as_what_it_is(
    tmp_path: Path, kind: str, what: str
) -> None:
    if kind == "AVIF" and not features.check("avif"):
        pytest.skip("this Pillow cannot write AVIF")
    path = tmp_path / f"really_{kind.lower()}.jpg"
    Image.new("RGB", (8, 8)).save(path, kind)
    accepted = r"not one of the accepted formats \(PNG, JPEG, BMP, WEBP, TIFF\)$"
    with pytest.raises(FormatRefused, match=rf"^{what} file named \.jpg, {accepted}"):
        open_image(path)
    with pytest.raises(FormatRefused, match=rf"^{what} image, {accepted}"):
        read_rgb(io.BytesIO(path.read_bytes()))
    path.write_bytes(b"nothing anyone knows")
    with pytest.raises(UnidentifiedImageError):  # not a format by its first bytes: as it was
        open_image(path)


def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(monkeypatch) -> None:
    monkeypatch.setattr("tango_ci.runtime.images.MAX_PIXELS", 99)
    image = _saved(Image.new("L", (10, 10)), "PNG")
    with pytest.raises(ImageTooLarge, match=r"^10x10 pixels is over the limit of 99 pixels$"):
        read_rgb(image)
    assert read_rgb(_saved(Image.new("L", (9, 11)), "PNG")).shape == (11, 9, 3)


def test_anything_pillow_cannot_decode_is_an_image_error() -> None:
    with pytest.raises(ImageError, match=r"^not an image Pillow can read \("):
        read_rgb(io.BytesIO(b"\x89PNG not really"))


@pytest.mark.parametrize("shape", [(1, 20_000), (20_000, 1), (3, 5_000)])
def test_a_letterbox_of_an_extreme_aspect_ratio_keeps_one_pixel(shape: tuple) -> None:
    image = np.full((*shape, 3), 200, np.uint8)
    boxed, how = fit(image, LETTERBOX)
    assert boxed.shape == (16, 16, 3)
    assert (boxed == 200).any() and how["scale"] == 16 / max(shape)


def test_a_postscript_body_never_reaches_the_eps_decoder(monkeypatch) -> None:
    """Served bodies are untrusted: EPS would make Pillow run Ghostscript on them."""
    from PIL import EpsImagePlugin

    opened: list[str] = []

    def spy(self) -> None:
        opened.append("eps")
        raise SyntaxError("not allowed")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", spy)
    body = io.BytesIO(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n")
    with pytest.raises(ImageError):
        read_rgb(body)
    assert opened == []


def test_a_phone_photo_is_read_upright_as_the_trainers_read_it() -> None:
    """EXIF orientation 6 (rotated 90 degrees clockwise): the data stage and ultralytics turn
    it upright, so the deployed model must see it so too."""
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = 255  # left half white, as stored
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    buffer.seek(0)
    read = read_rgb(buffer)
    assert read.shape == (40, 20, 3)  # upright: taller than wide
    assert read[:20].mean() > 200 and read[20:].mean() < 50  # the white half is now on top


def test_with_ultralytics_imported_an_unknown_file_installs_nothing(monkeypatch) -> None:
    """ultralytics replaces Image.open with one that runs check_requirements("pi-heif") (a pip
    install) the first time a file is not identified; images are opened with Pillow's own."""
    import ultralytics.utils.checks
    import ultralytics.utils.patches  # applies the replacement

    asked: list = []
    monkeypatch.setattr(ultralytics.utils.checks, "check_requirements", asked.append)
    assert Image.open.__module__.startswith("ultralytics")
    with pytest.raises(ImageError):
        read_rgb(io.BytesIO(b"not an image at all, " * 20))
    assert asked == []
