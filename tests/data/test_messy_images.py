"""Messy and hostile images in an ImageFolder: decoders limited to the accepted formats, huge
files refused unread, EXIF-rotated photos decoded as the trainers see them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from tango_ci.data.dataset import build_arrays
from tango_ci.data.files import MAX_IMAGE_BYTES
from tango_ci.runtime.images import MAX_FILE_PIXELS


def _image(path: Path, pixels: np.ndarray, **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **save)
    return path


def _folder(root: Path, per_class: int = 4) -> Path:
    for index, name in enumerate(("a", "b")):
        for i in range(per_class):
            _image(root / name / f"{i}.png", np.full((8, 8, 3), 40 * index + i, np.uint8))
    return root


def _build(folder: Path, **kwargs) -> dict:
    options = {"image_size": 8, "val_fraction": 0.25, "seed": 0, "max_bad_fraction": 0.5}
    return build_arrays(folder, **{**options, **kwargs})


def _pixels(built: dict, path: str) -> np.ndarray:
    """The decoded pixels of one file, in whichever split it fell."""
    split = next(f["split"] for f in built["files"] if f["path"] == path)
    order = [f["path"] for f in built["files"] if f["split"] == split]
    return built["arrays"][split][0][order.index(path)]


def test_postscript_named_jpg_never_reaches_the_eps_decoder(tmp_path: Path, monkeypatch) -> None:
    """A .jpg that is really EPS would make Pillow run Ghostscript on untrusted data."""
    opened: list[str] = []

    def spy(self) -> None:
        opened.append(str(self.fp))
        raise SyntaxError("not allowed")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", spy)
    folder = _folder(tmp_path / "d")
    (folder / "a" / "e.jpg").write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n")
    built = _build(folder)
    assert opened == []
    assert [b["path"] for b in built["bad"]] == ["a/e.jpg"]


def test_an_image_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "d")
    with open(folder / "a" / "huge.png", "wb") as handle:  # sparse: no disk used
        handle.truncate(MAX_IMAGE_BYTES + 1)
    built = _build(folder)
    assert built["bad"] == [
        {
            "path": "a/huge.png",
            "reason": f"image file refused: {MAX_IMAGE_BYTES + 1} bytes, larger than the "
            f"{MAX_IMAGE_BYTES} allowed",
        }
    ]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    """A phone photo stored sideways: the left half (red) is the top once turned upright."""
    folder = _folder(tmp_path / "d")
    pixels = np.zeros((8, 16, 3), np.uint8)
    pixels[:, :8, 0] = 255  # left half red
    pixels[:, 8:, 2] = 255  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    _image(folder / "a" / "phone.png", pixels, exif=exif)
    upright = _pixels(_build(folder), "a/phone.png")
    assert upright[1, :, 0].min() > 200 and upright[1, :, 2].max() < 50  # top row red
    assert upright[-2, :, 2].min() > 200 and upright[-2, :, 0].max() < 50  # bottom row blue


@pytest.mark.parametrize("name", ["t.JPG", "w.webp", "b.bmp", "t.tiff"])
def test_every_accepted_suffix_still_decodes(tmp_path: Path, name: str) -> None:
    folder = _folder(tmp_path / "d")
    _image(folder / "a" / name, np.full((8, 8, 3), 200, np.uint8))
    built = _build(folder)
    assert built["bad"] == []
    assert f"a/{name}" in [f["path"] for f in built["files"]]


def test_macos_appledouble_files_are_skipped(tmp_path: Path) -> None:
    """``._name.png`` files (resource forks copied from macOS) carry an image suffix but no
    image; like ``.DS_Store`` they are not part of the dataset."""
    folder = _folder(tmp_path / "d")
    for image in list(folder.glob("*/*.png")):
        (image.parent / f"._{image.name}").write_bytes(b"\x00\x05\x16\x07" + bytes(80))
    built = _build(folder)
    assert built["bad"] == [] and len(built["files"]) == 8


def test_folders_left_out_are_named_in_warnings(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "d")
    _image(folder / "c" / "2019" / "0.png", np.zeros((8, 8, 3), np.uint8))
    (folder / "d").mkdir()
    built = _build(folder)
    assert built["classes"] == ["a", "b"]
    assert built["warnings"] == [
        "c: its images are in subfolders, which are not read; not a class",
        "d: empty; not a class",
    ]


def test_val_class_missing_from_train_is_named(tmp_path: Path) -> None:
    root = tmp_path / "d"
    for split in ("train", "val"):
        _folder(root / split, per_class=2)
    _image(root / "val" / "zzz" / "0.png", np.zeros((8, 8, 3), np.uint8))
    built = _build(root)
    assert built["warnings"][0] == "val/zzz: a class train/ lacks; its images are not read"


def test_identical_images_across_splits_are_counted(tmp_path: Path) -> None:
    root = tmp_path / "d"
    for split in ("train", "val"):
        _folder(root / split, per_class=2)  # the same pixels: every val image is a train one
    built = _build(root)
    assert built["warnings"] == [
        "4 image(s) are identical to one in another split (leakage between splits); "
        "first: train/a/0.png and val/a/0.png"
    ]


def test_a_gif_named_jpg_is_said_to_be_one(tmp_path: Path) -> None:
    """It read 'UnidentifiedImageError: cannot identify image file', which says nothing of
    what the file is or what would be read."""
    folder = _folder(tmp_path / "d")
    Image.new("RGB", (8, 8)).save(folder / "a" / "really_gif.jpg", "GIF")
    assert _build(folder)["bad"] == [
        {
            "path": "a/really_gif.jpg",
            "reason": "FormatRefused: a GIF file named .jpg, not one of the accepted formats "
            "(PNG, JPEG, BMP, WEBP, TIFF)",
        }
    ]


def test_a_50_megapixel_phone_photo_is_read(tmp_path: Path) -> None:
    """An ordinary 8160 x 6120 JPEG (0.8 MB) was refused as over 40 million pixels."""
    folder = _folder(tmp_path / "d")
    Image.new("RGB", (8160, 6120), (200, 10, 10)).save(folder / "a" / "phone.jpg", quality=50)
    built = _build(folder)
    assert built["bad"] == []
    colour = _pixels(built, "a/phone.jpg")[4, 4].astype(int)
    assert np.abs(colour - [200, 10, 10]).max() <= 4  # JPEG's rounding


def test_an_uncompressed_photo_at_the_pixel_limit_is_within_the_byte_limit() -> None:
    """A 70 MB uncompressed 4700 x 5000 TIFF was refused as over 64 MiB: the byte limit takes
    an 8-bit RGBA image at the pixel limit (a 108 MP phone photograph) without compression."""
    assert MAX_FILE_PIXELS >= 108_000_000
    assert MAX_IMAGE_BYTES >= 4 * MAX_FILE_PIXELS + 64 * 1024
