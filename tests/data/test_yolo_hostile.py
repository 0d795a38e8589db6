"""Messy and hostile YOLO datasets: each problem is one ``file:line:col`` line naming the file,
never a traceback, a hang or an exhausted machine; real-world oddities just work."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from tango_ci.data.files import MAX_TEXT_BYTES
from tango_ci.data.layout import yolo_problem
from tango_ci.data.yolo import check_dataset, load_split, read_dataset

DATA_YAML = "path: .\ntrain: images/train\nval: images/val\nnames: [a, b]\n"


def _image(path: Path, pixels: np.ndarray | None = None, **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8) if pixels is None else pixels).save(
        path, **save
    )
    return path


def _label(root: Path, split: str, stem: str, text: str = "0 0.5 0.5 0.2 0.2\n") -> Path:
    path = root / "labels" / split / f"{stem}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "yolo"
    for split, count in (("train", 2), ("val", 1)):
        for index in range(count):
            _image(root / "images" / split / f"{index}.png")
            _label(root, split, str(index))
    (root / "data.yaml").write_text(DATA_YAML)
    return root


def _problems(root: Path) -> list[str]:
    _, _, problems = check_dataset(root, root.parent)
    return [p.format() for p in problems]


def test_the_fixture_is_clean(root: Path) -> None:
    assert _problems(root) == []


def test_postscript_named_jpg_is_unreadable_without_the_eps_decoder(
    root: Path, monkeypatch
) -> None:
    opened: list[str] = []

    def spy(self) -> None:
        opened.append(str(self.fp))
        raise SyntaxError("not allowed")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", spy)
    (root / "images/val/e.jpg").write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n")
    _label(root, "val", "e")
    assert _problems(root) == ["images/val/e.jpg: image cannot be read (empty or corrupt)"]
    assert opened == []


def test_truncated_jpeg_in_train_is_found_by_the_check(root: Path) -> None:
    """verify() alone passed it; training would then fail or skip it."""
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, "JPEG")
    (root / "images/train/t.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    _label(root, "train", "t")
    assert _problems(root) == ["images/train/t.jpg: image cannot be read (empty or corrupt)"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("nan 0.5 0.5 0.2 0.2", "1:1: class nan is not a class id of data.yaml (0..1)"),
        ("inf 0.5 0.5 0.2 0.2", "1:1: class inf is not a class id of data.yaml (0..1)"),
        ("1e400 0.5 0.5 0.2 0.2", "1:1: class 1e400 is not a class id of data.yaml (0..1)"),
        ("0 0.5 0.5 0.2 5", "1:15: h 5 is outside 0..1 (coordinates are normalised)"),
        ("0 0.5 nan 0.2 0.2", "1:7: cy nan is outside 0..1 (coordinates are normalised)"),
    ],
)
def test_label_values_are_reported_at_their_column(root: Path, line: str, expected: str) -> None:
    _label(root, "val", "0", line + "\n")
    assert _problems(root) == [f"labels/val/0.txt:{expected}"]


def test_label_file_with_a_byte_order_mark_is_fine(root: Path) -> None:
    (root / "labels/val/0.txt").write_bytes(b"\xef\xbb\xbf0 0.5 0.5 0.2 0.2\r\n")
    assert _problems(root) == []


def test_label_fifo_is_refused_not_read(root: Path) -> None:
    label = root / "labels/val/0.txt"
    label.unlink()
    os.mkfifo(label)  # reading it would wait forever for a writer
    assert _problems(root) == ["labels/val/0.txt: label file refused: not a regular file"]


def test_huge_label_file_is_refused_unread(root: Path) -> None:
    with open(root / "labels/val/0.txt", "wb") as handle:  # sparse: no disk used
        handle.truncate(MAX_TEXT_BYTES + 1)
    assert _problems(root) == [
        f"labels/val/0.txt: label file refused: {MAX_TEXT_BYTES + 1} bytes, larger than the "
        f"{MAX_TEXT_BYTES} allowed"
    ]


def test_list_file_not_utf8_names_its_line(root: Path) -> None:
    (root / "val.txt").write_bytes(b"images/val/0.png\nimages/val/\xe9.png\n")
    (root / "data.yaml").write_text(DATA_YAML.replace("val: images/val", "val: val.txt"))
    assert _problems(root) == ["val.txt:2:12: not UTF-8 text"]


def test_exif_rotated_image_keeps_boxes_on_the_upright_image(root: Path) -> None:
    """Labels are relative to the image as ultralytics sees it: upright (here 20 wide, 40
    high), so the letterbox pads left and right and the box is placed on the portrait."""
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40 wide, 20 high; shown turned 90 degrees clockwise
    _image(root / "images/val/0.png", np.zeros((20, 40, 3), np.uint8), exif=exif)
    _label(root, "val", "0", "0 0.5 0.25 0.5 0.1\n")
    dataset, problems = read_dataset(root, root.parent)
    assert dataset is not None and problems == []
    loaded = load_split(dataset, "val", 32)
    image, boxes = loaded["images"][0], loaded["boxes"][0]
    assert (image[:, :8] == 114).all() and (image[:, 8:24] == 0).all()  # padded left and right
    assert boxes.ravel().tolist() == pytest.approx([0, 12, 6.4, 20, 9.6])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # a few hundred bytes of nested aliases expand to gigabytes
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n" + DATA_YAML,
            "data.yaml:2:8: YAML aliases (*name) are not supported in data.yaml; write it out",
        ),
        (
            DATA_YAML.replace("images/train", "5"),
            "data.yaml:2:8: train: must be a folder or a list file (or a list of them), got the "
            "int '5'",
        ),
        (
            DATA_YAML.replace("images/val", "[images/val, 7]"),
            "data.yaml:3:6: val: must be a folder or a list file (or a list of them), got the "
            "int '7'",
        ),
        (
            DATA_YAML.replace("images/val", "[" + "images/val, " * 101 + "]"),
            "data.yaml:3:6: val: 101 entries, more than 100",
        ),
        (
            DATA_YAML + "kpt_shape: [17, 4]\n",
            "data.yaml:5:12: kpt_shape: must be [keypoints, values per keypoint] (1..1000, and 2 "
            "or 3), got '[17, 4]'",
        ),
        (
            DATA_YAML.replace("[a, b]", "[cat, cat]"),
            "data.yaml:4:8: names: 'cat' is named twice (classes 0 and 1)",
        ),
        (
            DATA_YAML.replace("[a, b]", "[a, yes]"),
            "data.yaml:4:12: names: class 1 must be a name (text), got the bool 'True'; quote it",
        ),
        (  # PyYAML parses a date it cannot build: a ValueError, not a YAMLError
            DATA_YAML + "date: 2024-13-45\n",
            "data.yaml:1:1: invalid YAML: ValueError",
        ),
        (
            DATA_YAML.replace("images/val", "x" * 5000),
            "data.yaml:3:6: val: folder '" + "x" * 97 + "...' does not exist",
        ),
    ],
)
def test_data_yaml_is_read_with_bounds(root: Path, text: str, expected: str) -> None:
    (root / "data.yaml").write_text(text)
    assert _problems(root) == [expected]


def test_numeric_class_names_just_work(root: Path) -> None:
    (root / "data.yaml").write_text(DATA_YAML.replace("[a, b]", "[0, 1]"))
    dataset, problems = read_dataset(root, root.parent)
    assert problems == [] and dataset is not None and dataset.names == ("0", "1")


def test_macos_appledouble_files_are_skipped(root: Path) -> None:
    (root / "images/val/._0.png").write_bytes(b"\x00\x05\x16\x07" + bytes(100))
    (root / "images/val/.DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    assert _problems(root) == []


def test_validation_reads_data_yaml_with_the_same_bounds(root: Path) -> None:
    """The project check (``yolo_problem``) reads data.yaml before the data stage does."""
    (root / "data.yaml").write_text("a: &a [x, x]\nb: [*a, *a]\n" + DATA_YAML)
    assert yolo_problem(root) == (
        "has a broken data.yaml (data.yaml:2:5: YAML aliases (*name) are not supported in "
        "data.yaml; write it out)"
    )


def test_validation_names_the_data_file_data_path_gives(root: Path) -> None:
    (root / "other.yaml").write_text("a: &a [x, x]\nb: [*a, *a]\n" + DATA_YAML)
    assert yolo_problem(root / "other.yaml") == (
        "has a broken other.yaml (other.yaml:2:5: YAML aliases (*name) are not supported in "
        "data.yaml; write it out)"
    )


def test_an_image_over_the_pixel_limit_is_named_as_refused(root: Path, monkeypatch) -> None:
    import tango_ci.runtime.images

    monkeypatch.setattr(tango_ci.runtime.images, "MAX_FILE_PIXELS", 1)
    found = _problems(root)
    assert found and all(
        "image refused: " in p and "over the limit of 1 pixels" in p for p in found
    )
