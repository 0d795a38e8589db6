"""Reading an ImageFolder: seeded splits, fingerprints, and unreadable images by path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tango_ci.data.dataset import TooManyBadImages, build_arrays, preprocess
from tango_ci.data.synth import SynthRequest, synthesize


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    synthesize(SynthRequest(out=tmp_path / "d", images_per_class=10, size=16, seed=3))
    return tmp_path / "d"


def _build(folder: Path, **kwargs) -> dict:
    options = {"image_size": 16, "val_fraction": 0.2, "seed": 0, "max_bad_fraction": 0.05}
    return build_arrays(folder, **{**options, **kwargs})


def test_split_is_seeded_and_stratified(folder: Path) -> None:
    a, b, c = _build(folder), _build(folder), _build(folder, seed=1)
    assert np.array_equal(a["arrays"]["val"][0], b["arrays"]["val"][0])
    assert not np.array_equal(a["arrays"]["val"][0], c["arrays"]["val"][0])
    # about 20% of each class by content hash, at least one image of each
    assert min(np.bincount(a["arrays"]["val"][1], minlength=3)) >= 1
    assert len(a["arrays"]["val"][1]) + len(a["arrays"]["train"][1]) == 30
    assert a["fingerprint"] == c["fingerprint"]  # same files, same fingerprint


def test_fingerprint_follows_content(folder: Path) -> None:
    before = _build(folder)["fingerprint"]
    image = next((folder / "circle").glob("*.png"))
    image.write_bytes((folder / "square" / "square_00000.png").read_bytes())
    assert _build(folder)["fingerprint"] != before


def test_a_corrupt_image_is_reported_by_path(folder: Path) -> None:
    (folder / "circle" / "circle_00003.png").write_bytes(b"\x89PNG broken")
    built = _build(folder, max_bad_fraction=0.1)
    assert [b["path"] for b in built["bad"]] == ["circle/circle_00003.png"]
    assert len(built["arrays"]["train"][0]) + len(built["arrays"]["val"][0]) == 29


def test_too_many_corrupt_images_fail_the_stage(folder: Path) -> None:
    for index in range(3):
        (folder / "square" / f"square_{index:05d}.png").write_bytes(b"")
    with pytest.raises(TooManyBadImages) as info:
        _build(folder, max_bad_fraction=0.05)
    assert info.value.message == (
        "3 of 30 images cannot be read (10.0% > the allowed 5.0% of data.max_bad_fraction); "
        "first: square/square_00000.png (an empty file (0 bytes)); square/square_00001.png "
        "(an empty file (0 bytes)); square/square_00002.png (an empty file (0 bytes))"
    )
    assert [b["path"] for b in info.value.bad_files] == [
        f"square/square_{i:05d}.png" for i in range(3)
    ]


def test_preprocess_is_nchw_float_in_minus_one_one() -> None:
    x = preprocess(np.array([[[[0, 255, 128]]]], dtype=np.uint8))
    assert x.shape == (1, 3, 1, 1) and x.dtype == np.float32
    assert x.ravel().tolist() == pytest.approx([-1.0, 1.0, 0.003921], abs=1e-5)
