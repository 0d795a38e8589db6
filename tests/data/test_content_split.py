"""Splits of an ImageFolder drawn from each image's content: adding images moves no image into
or out of the test split, validation keeps its exact share, identical images share a split, small classes keep their guarantees, and unreadable images are
left out before the guarantees are kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tango_ci.data.dataset import build_arrays, scan_imagefolder
from tango_ci.exceptions import TangoError

CLASSES = ("cat", "dog", "fox")


def _png(path: Path, rng: np.random.Generator) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)
    return path


def _folder(root: Path, per_class: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name in CLASSES:
        for index in range(per_class):
            _png(root / name / f"{index:03d}.png", rng)
    return root


def _build(folder: Path, **kwargs) -> dict:
    options = {"image_size": 8, "val_fraction": 0.2, "test_fraction": 0.15, "seed": 0}
    return build_arrays(folder, **{**options, "max_bad_fraction": 0.5, **kwargs})


def _split_of(built: dict) -> dict[str, str]:
    return {entry["path"]: entry["split"] for entry in built["files"]}


def _counts(built: dict, split: str) -> list[int]:
    if split not in built["arrays"]:
        return [0] * len(built["classes"])
    return np.bincount(built["arrays"][split][1], minlength=len(built["classes"])).tolist()


@pytest.mark.parametrize("seed", [0, 1])
def test_adding_images_moves_no_image_into_or_out_of_the_test_split(
    tmp_path: Path, seed: int
) -> None:
    """The gate's test split stays apart across runs: a seeded permutation moved about a
    quarter of it into training when 10 images were added to one class. Validation keeps its
    exact share (it may trade images with training, which only picks among candidates)."""
    folder = _folder(tmp_path / "d", per_class=30)
    before = _split_of(_build(folder, seed=seed))
    _, items = scan_imagefolder(folder, 0.2, seed, test_fraction=0.15)
    assert {i.path.relative_to(folder).as_posix(): i.split for i in items} == before
    rng = np.random.default_rng(99)
    for index in range(30, 40):  # as `tango label import` adds to one class
        _png(folder / "cat" / f"{index:03d}.png", rng)
    built = _build(folder, seed=seed)
    after = _split_of(built)
    assert {p for p in before if after[p] == "test"} == {p for p in before if before[p] == "test"}
    unchanged = {p for p in before if not p.startswith("cat/")}
    assert {p: after[p] for p in unchanged} == {p: before[p] for p in unchanged}
    assert _counts(built, "val") == [8, 6, 6]  # 20% of 40, 30, 30: exact
    assert len(after) == len(before) + 10


def test_identical_images_always_share_a_split(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "d", per_class=12)
    for name in CLASSES:  # three copies of every image, under other names
        for image in sorted((folder / name).glob("*.png")):
            for copy in ("b", "c"):
                (image.parent / f"{copy}{image.name}").write_bytes(image.read_bytes())
    built = _build(folder)
    split_of = _split_of(built)
    for entry in built["files"]:
        copies = {split_of[e["path"]] for e in built["files"] if e["sha256"] == entry["sha256"]}
        assert copies == {entry["split"]}, entry["path"]
    assert not any("another split" in warning for warning in built["warnings"])
    assert {_counts(built, s)[0] % 3 for s in ("train", "val", "test")} == {0}


@pytest.mark.parametrize("seed", range(6))
def test_small_classes_keep_a_training_image_and_a_held_out_one(tmp_path: Path, seed) -> None:
    rng = np.random.default_rng(seed)
    for name, count in zip(CLASSES, (1, 2, 3), strict=True):
        for index in range(count):
            _png(tmp_path / "d" / name / f"{index}.png", rng)
    built = _build(tmp_path / "d", seed=seed)
    assert _counts(built, "train") == [1, 1, 1]
    assert _counts(built, "val") == [0, 1, 1]
    assert _counts(built, "test") == [0, 0, 1]


@pytest.mark.parametrize("seed", range(4))
def test_small_classes_count_identical_images_once(tmp_path: Path, seed: int) -> None:
    """Three files, two of them the same image: two images, so one trains and one validates,
    and the copies stay together."""
    folder = _folder(tmp_path / "d", per_class=10, seed=seed)
    small = folder / "cat"
    for image in sorted(small.glob("*.png"))[2:]:
        image.unlink()
    (small / "002.png").write_bytes((small / "000.png").read_bytes())
    built = _build(folder, seed=seed)
    split_of = _split_of(built)
    assert split_of["cat/000.png"] == split_of["cat/002.png"]
    assert sorted(split_of[f"cat/{i:03d}.png"] for i in (0, 1)) == ["train", "val"]


@pytest.mark.parametrize("seed", range(6))
def test_a_class_with_one_readable_image_trains_on_it(tmp_path: Path, seed: int) -> None:
    folder = _folder(tmp_path / "d", per_class=6, seed=seed)
    _png(folder / "x" / "a_good.png", np.random.default_rng(seed))
    (folder / "x" / "b_zero.jpg").write_bytes(b"")
    built = _build(folder, seed=seed)
    assert _split_of(built)["x/a_good.png"] == "train"
    assert [b["path"] for b in built["bad"]] == ["x/b_zero.jpg"]


def test_a_class_with_no_readable_image_names_its_files(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "d", per_class=6)
    (folder / "x").mkdir()
    (folder / "x" / "b_zero.jpg").write_bytes(b"")
    (folder / "x" / "c_broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(TangoError) as info:
        _build(folder)
    assert "the class x has no readable training image (2 unreadable; first: " in str(info.value)
    assert "first: x/b_zero.jpg (an empty file (0 bytes))" in str(info.value)


def test_split_folders_draw_the_test_split_by_content(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    _folder(folder / "train", per_class=20)
    _folder(folder / "val", per_class=3, seed=1)
    before = _split_of(_build(folder))
    _png(folder / "train" / "dog" / "new.png", np.random.default_rng(5))
    after = _split_of(_build(folder))
    assert {path: after[path] for path in before} == before
    assert {s for p, s in after.items() if p.startswith("val/")} == {"val"}
    assert {s for p, s in after.items() if p.startswith("train/")} == {"train", "test"}
