"""YOLO datasets as Roboflow, CVAT, Label Studio and ultralytics write them: what ultralytics
trains on is read here too (the same boxes), and what it mends is mended and said."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tango_ci.data.yolo import check_dataset, load_split, read_dataset
from tango_ci.data.yolo_labels import read_labels
from tango_ci.detection.data_stage import _training_yaml

BOX = "0 0.5 0.5 0.2 0.2\n"


def _image(root: Path, split: str, stem: str, labels: str | None = BOX, suffix: str = ".png"):
    path = root / "images" / split / f"{stem}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    seed = sum(map(ord, split + stem))
    noise = np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, format="JPEG" if suffix == ".mpo" else None)
    if labels is not None:
        label = root / "labels" / split / f"{stem}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(labels)
    return path


def _dataset(tmp_path: Path, yaml_text: str) -> Path:
    root = tmp_path / "repo" / "data"
    for split in ("train", "val"):
        for index in range(2):
            _image(root, split, f"{split[0]}{index}")
    (root / "data.yaml").write_text(yaml_text)
    return root


YAML = "path: .\ntrain: images/train\nval: images/val\nnames: [a, b]\n"


@pytest.mark.parametrize("shape", [(4, 2), (17, 3)])
def test_pose_rows_are_read_as_their_box(tmp_path: Path, shape: tuple[int, int]) -> None:
    """With kpt_shape, a row is a box and then its keypoints: ultralytics keeps the box for a
    detection task (a polygon reading of the same row gives another box, or a refusal)."""
    root = _dataset(tmp_path, YAML + f"kpt_shape: [{shape[0]}, {shape[1]}]\n")
    points = " ".join(["0.45 0.55" + " 2" * (shape[1] == 3)] * shape[0])
    (root / "labels/train/t0.txt").write_text(f"1 0.5 0.5 0.2 0.2 {points}\n")
    dataset, stats, problems = check_dataset(root, root.parent)
    assert problems == [] and dataset is not None and dataset.keypoints == shape
    assert stats["per_class"] == {"a": 3, "b": 1}
    rows = read_labels((root / "labels/train/t0.txt").read_bytes(), 2, "t0", shape).rows
    assert len(rows) == 1 and rows[0].tolist() == pytest.approx([1, 0.5, 0.5, 0.2, 0.2])
    assert _training_yaml(tmp_path, dataset)["kpt_shape"] == list(shape)  # ultralytics reads it


def test_a_list_of_folders_and_a_list_file_of_any_name_are_splits(tmp_path: Path) -> None:
    root = _dataset(tmp_path, YAML.replace("images/train", "[images/train, more/images/x]"))
    _image(root / "more", "x", "m0")
    (root / "val.list").write_text("images/val/v0.png\n")
    (root / "data.yaml").write_text(
        (root / "data.yaml").read_text().replace("val: images/val", "val: val.list")
    )
    dataset, stats, problems = check_dataset(root, root.parent)
    assert problems == [] and dataset is not None
    assert [p.name for p in dataset.images["train"]] == ["t0.png", "t1.png", "m0.png"]
    assert stats["images"] == {"train": 3, "val": 1}


@pytest.mark.parametrize("test_entry", ["../test/images", "images/test"])
def test_a_test_entry_without_images_leaves_the_test_split_to_be_drawn(
    tmp_path: Path, test_entry: str
) -> None:
    """Roboflow writes ``test: ../test/images`` even when it exported no test split;
    ultralytics trains all the same. An empty test folder is the same case."""
    root = _dataset(tmp_path, YAML + f"test: {test_entry}\n")
    (root / "images/test").mkdir()
    dataset, stats, problems = check_dataset(root, root.parent)
    assert problems == [] and dataset is not None and "test" not in dataset.images
    why = "'../test/images' does not exist" if "../" in test_entry else "has no images"
    assert stats["warnings"] == [
        f"data.yaml:5:7: test: {why}; the test split is drawn from the training images "
        "instead (data.split.test)"
    ]


def test_a_missing_train_folder_is_still_refused_naming_where_it_was_looked_for(
    tmp_path: Path,
) -> None:
    root = _dataset(
        tmp_path, YAML.replace("path: .", "path: sub").replace("train: images", "train: x")
    )
    (root / "sub").mkdir()
    _, problems = read_dataset(root, root.parent)
    assert problems[0].format() == (
        "data.yaml:2:8: train: folder 'x/train' does not exist (under path: 'sub')"
    )


def test_polygons_sharing_a_box_are_two_objects_identical_ones_one(tmp_path: Path) -> None:
    """ultralytics tells polygons apart by their points, not by the box around them."""
    one = "0 0.1 0.1 0.5 0.1 0.1 0.5\n"
    other = "0 0.5 0.5 0.5 0.1 0.1 0.5\n"  # another triangle with the same box
    read = read_labels((one + other + one).encode(), 2, "l.txt")
    assert len(read.rows) == 2 and read.duplicates == 1
    assert read.rows[0].tolist() == read.rows[1].tolist()


@pytest.mark.parametrize(
    ("line", "box", "problem"),
    [
        ("0 -0.02 0.1 0.5 0.1 0.1 0.5", [0, 0.25, 0.3, 0.5, 0.4], None),  # cut at the edge
        (
            "0 -0.6 0.1 0.5 0.1 0.1 0.5",  # the box centre left of the image
            None,
            "1:3: x1 -0.6 is outside 0..1 (coordinates are normalised)",
        ),
        ("0 12 30 50 30 30 80", None, "1:3: x1 12 is outside 0..1 (coordinates are normalised)"),
    ],
)
def test_polygon_points_past_the_edge_follow_ultralytics_bounds(line, box, problem) -> None:
    read = read_labels(f"{line}\n".encode(), 2, "l.txt")
    if problem is None:
        assert read.problems == [] and read.clipped == 1
        assert read.rows[0].tolist() == pytest.approx(box)
    else:
        assert [
            p.format().split(": ", 1)[0].split(":", 1)[1] + ": " + p.message for p in read.problems
        ] == [problem]


def test_class_indices_written_as_text_are_indices(tmp_path: Path) -> None:
    root = _dataset(tmp_path, YAML.replace("[a, b]", "{'0': a, '1': b}"))
    dataset, problems = read_dataset(root, root.parent)
    assert problems == [] and dataset is not None and dataset.names == ("a", "b")
    (root / "data.yaml").write_text(YAML.replace("[a, b]", "{0: a, '0': b}"))
    assert "written twice" in read_dataset(root, root.parent)[1][0].format()


def test_image_types_ultralytics_reads_are_read_or_said_to_be_left_out(tmp_path: Path) -> None:
    root = _dataset(tmp_path, YAML)
    _image(root, "train", "camera", suffix=".mpo")  # a camera's JPEG: read
    avif = root / "images/train/phone.avif"
    avif.write_bytes(b"\x00\x00\x00\x1cftypavif")  # never decoded: only its name is seen
    dataset, stats, problems = check_dataset(root, root.parent)
    assert problems == [] and dataset is not None
    assert [p.name for p in dataset.images["train"]] == ["camera.mpo", "t0.png", "t1.png"]
    assert stats["warnings"] == [
        "1 image(s) of types ultralytics reads but this data stage does not decode (.avif) "
        "left out; first: images/train/phone.avif; convert them to PNG or JPEG to use them"
    ]
    assert len(load_split(dataset, "train", 32)["boxes"]) == 3


def test_the_written_training_yaml_has_no_kpt_shape_without_pose_rows(tmp_path: Path) -> None:
    root = _dataset(tmp_path, YAML)
    dataset, _ = read_dataset(root, root.parent)
    assert dataset is not None
    written = _training_yaml(tmp_path, dataset)
    assert "kpt_shape" not in written and yaml.safe_dump(written)


def test_unusable_images_within_the_allowed_share_are_left_out(tmp_path: Path) -> None:
    """ultralytics leaves out a corrupt image and trains on the rest; the check does too while
    they are within max_bad_fraction, and refuses past it."""
    root = _dataset(tmp_path, YAML)
    for index in range(2, 9):
        _image(root, "train", f"t{index}")
    (root / "images/train/t2.png").write_bytes(b"")
    cut = root / "images/train/t3.png"
    cut.write_bytes(cut.read_bytes()[:200])  # truncated
    dataset, stats, problems = check_dataset(root, root.parent, max_bad_fraction=0.2)
    assert problems == [] and dataset is not None
    assert [p.name for p in dataset.images["train"]] == [f"t{i}.png" for i in (0, 1, 4, 5, 6, 7, 8)]
    assert stats["images"] == {"train": 7, "val": 2} and stats["unreadable_images"] == 2
    assert stats["warnings"] == [
        "2 of 11 image(s) left out, unreadable or under 10 pixels a side (within data.max_bad_fraction 0.2); first: "
        "images/train/t2.png: image cannot be read (empty or corrupt)"
    ]
    _, _, problems = check_dataset(root, root.parent, max_bad_fraction=0.1)
    assert [p.format() for p in problems] == [
        "images/train/t2.png: image cannot be read (empty or corrupt)",
        "images/train/t3.png: image cannot be read (empty or corrupt)",
    ]


def test_a_broken_link_is_an_unreadable_image_not_lost(tmp_path: Path) -> None:
    root = _dataset(tmp_path, YAML)
    (root / "images/train/gone.png").symlink_to("nowhere.png")
    _, _, problems = check_dataset(root, root.parent)
    assert [p.format() for p in problems] == [
        "images/train/gone.png: image file refused: a broken symbolic link"
    ]


def test_a_validation_key_is_read_as_val(tmp_path: Path) -> None:
    root = _dataset(tmp_path, YAML.replace("val:", "validation:"))
    dataset, stats, problems = check_dataset(root, root.parent)
    assert problems == [] and dataset is not None and stats["images"]["val"] == 2
    assert stats["warnings"] == ["data.yaml: 'validation:' read as 'val:', as ultralytics reads it"]


def test_images_under_ten_pixels_a_side_are_left_out_as_ultralytics_leaves_them(
    tmp_path: Path,
) -> None:
    root = _dataset(tmp_path, YAML)
    for index in range(2, 9):
        _image(root, "train", f"t{index}")
    Image.new("RGB", (9, 40)).save(root / "images/train/thin.png")
    Image.new("RGB", (10, 10)).save(root / "images/train/small.png")  # kept: 10 is enough
    dataset, stats, problems = check_dataset(root, root.parent, max_bad_fraction=0.1)
    assert problems == [] and dataset is not None
    assert "thin.png" not in [p.name for p in dataset.images["train"]]
    assert "small.png" in [p.name for p in dataset.images["train"]]
    assert stats["unreadable_images"] == 1
    assert stats["warnings"][-2].endswith(
        "images/train/thin.png: image of 9x40 pixels: ultralytics leaves out images under 10 "
        "pixels a side"
    )
    _, _, problems = check_dataset(root, root.parent)
    assert [p.format() for p in problems] == [
        "images/train/thin.png: image of 9x40 pixels: ultralytics leaves out images under 10 "
        "pixels a side"
    ]


@pytest.mark.parametrize("nc", ["3", "'3'", "3.0"])
def test_nc_without_names_names_the_classes_as_ultralytics_does(tmp_path: Path, nc: str) -> None:
    root = _dataset(tmp_path, YAML.replace("names: [a, b]", f"nc: {nc}"))
    dataset, stats, problems = check_dataset(root, root.parent)
    assert problems == [] and dataset is not None
    assert dataset.names == ("class_0", "class_1", "class_2")
    assert stats["warnings"] == [
        "data.yaml: no names, so the 3 classes are named class_0 .. class_2, as ultralytics "
        "names them; add names: for readable reports"
    ]
    (root / "data.yaml").write_text(YAML.replace("names: [a, b]", f"names:\nnc: {nc}"))
    assert read_dataset(root, root.parent)[0] is not None  # an empty names: too


@pytest.mark.parametrize(
    ("nc", "problem"),
    [
        (
            "1.5",
            "data.yaml:4:5: nc: must be a whole number (the number of classes), got the float '1.5'",
        ),
        ("0", "data.yaml:4:5: nc: must be 1 to"),
        ("many", "data.yaml:4:5: nc: must be a whole number (the number of classes), got 'many'"),
    ],
)
def test_nc_without_names_must_be_a_count(tmp_path: Path, nc: str, problem: str) -> None:
    root = _dataset(tmp_path, YAML.replace("names: [a, b]", f"nc: {nc}"))
    dataset, problems = read_dataset(root, root.parent)
    assert dataset is None and problems[0].format().startswith(problem)


def test_a_bad_nc_is_said_beside_a_missing_split(tmp_path: Path) -> None:
    root = _dataset(tmp_path, "path: .\ntrain: images/train\nnc: 0\n")
    dataset, problems = read_dataset(root, root.parent)
    assert dataset is None
    assert [p.format() for p in problems] == [
        "data.yaml:1:1: missing required field 'val'",
        "data.yaml:3:5: nc: must be 1 to 10000 classes, got 0",
    ]
