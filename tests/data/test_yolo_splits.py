"""What the YOLO check keeps of a split: identical boxes once (as ultralytics), split folders
beside the dataset's ``path:`` named relative to it, and a bounded number of problems with one
line saying how many there were."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tango_ci.data.yolo import (
    MAX_PROBLEMS,
    ProblemList,
    check_dataset,
    load_split,
    read_dataset,
)
from tango_ci.data.yolo_labels import read_labels
from tango_ci.spec.problems import Problem

BOX = "0 0.5 0.5 0.2 0.2\n"


def _image(root: Path, split: str, stem: str, labels: str | None = BOX, seed: int = 0) -> Path:
    """A 32 px image of its own noise under ``root/images/split`` and its label file."""
    path = root / "images" / split / f"{stem}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    if labels is not None:
        label = root / "labels" / split / f"{stem}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(labels)
    return path


def _dataset(tmp_path: Path, train: int = 2, val: str = "images/val") -> Path:
    root = tmp_path / "repo" / "data"
    root.mkdir(parents=True)
    for index in range(train):
        _image(root, "train", f"t{index}", seed=index)
    (root / "data.yaml").write_text(f"path: .\ntrain: images/train\nval: {val}\nnames: [a, b, c]\n")
    return root


def _lines(root: Path, **cap: int) -> list[str]:
    _, _, problems = check_dataset(root, root.parent, **cap)
    return [p.format() for p in problems]


def test_identical_lines_are_one_box_counted_and_warned_of(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    _image(root, "val", "v0", BOX + "2 0.3 0.3 0.1 0.1\n" + BOX + "0.0 0.50 0.5 0.2 0.2\n", 5)
    _image(root, "val", "v1", BOX, 6)
    dataset, stats, problems = check_dataset(root, root.parent)
    assert problems == [] and dataset is not None
    assert stats["boxes"] == {"train": 2, "val": 3} and stats["duplicate_boxes"] == 2
    assert stats["per_class"] == {"a": 4, "b": 0, "c": 1}
    assert stats["warnings"] == [
        "2 duplicate box(es) removed, identical lines of a label file (ultralytics removes "
        "them too), in 1 file(s); first: labels/val/v0.txt"
    ]
    boxes = load_split(dataset, "val", 32)["boxes"]
    assert [b[:, 0].tolist() for b in boxes] == [[0, 2], [0]]  # the file's order


def test_repeated_lines_keep_the_first_of_each_in_order() -> None:
    text = "1 0.5 0.5 0.1 0.1\n0 0.2 0.2 0.1 0.1\n" * 3
    read = read_labels(text.encode(), 2, "l.txt")
    assert read.rows.tolist() == read_labels(text.encode()[:36], 2, "l.txt").rows.tolist()
    assert read.rows[:, 0].tolist() == [1, 0] and read.duplicates == 4
    assert len(read_labels(b"", 2, "l.txt").rows) == 0


def test_a_split_beside_the_dataset_path_is_read_and_named_relative_to_it(
    tmp_path: Path,
) -> None:
    root = _dataset(tmp_path, val="../extra/images/val")
    extra = root.parent / "extra"
    _image(extra, "val", "v0", BOX, 5)
    _image(extra, "val", "v1", None, 6)  # no label file: named from the dataset, not the host
    dataset, stats, problems = check_dataset(root, root.parent)
    assert problems == [] and dataset is not None and stats["images"]["val"] == 2
    assert stats["warnings"][-1].endswith("first: ../extra/labels/val/v1.txt")
    loaded = load_split(dataset, "val", 32)
    assert loaded["files"] == ["../extra/images/val/v0.png", "../extra/images/val/v1.png"]


def test_problems_past_the_cap_are_counted_in_one_line(tmp_path: Path) -> None:
    root = _dataset(tmp_path, train=0)
    for index in range(12):  # in reverse: the first kept are the first by name
        _image(root, "train", f"t{11 - index:02d}", "7 0.5 0.5 0.2 0.2\n", index)
    _image(root, "val", "v0", "x\n", 999)
    lines = _lines(root, max_problems=5)
    assert lines == [
        *(
            f"labels/train/t{i:02d}.txt:1:1: class 7 is not a class id of data.yaml (0..2)"
            for i in range(5)
        ),
        "data.yaml: ... and 8 more problem(s), 13 in all",
    ]
    assert len(_lines(root)) == 13 <= MAX_PROBLEMS


def test_missing_listed_images_past_the_cap_are_counted_in_one_line(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    _image(root, "val", "v0", BOX, 5)
    gone = "".join(f"images/val/gone{i}.png\n" for i in range(80))
    (root / "val.txt").write_text(f"images/val/v0.png\n{gone}")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: val.txt\nnames: [a]\n")
    dataset, problems = read_dataset(root, root.parent, max_problems=50)
    assert dataset is None and len(problems) == 51
    assert problems[0].format() == "images/val/gone0.png: listed in 'val.txt' but missing"
    assert problems[-1].format() == "data.yaml: ... and 30 more problem(s), 80 in all"


@pytest.mark.parametrize("ordered", [False, True])
def test_a_problem_list_stays_small_however_many_are_added(ordered: bool) -> None:
    found = ProblemList(ordered=ordered, limit=3)
    found.add(Problem(f"f{9999 - i:04d}", 1, 1, "", "bad") for i in range(10_000))
    assert len(found.kept) <= 6 and found.total == 10_000
    shown = [p.file for p in found.result("data.yaml")]
    assert shown[:3] == (["f0000", "f0001", "f0002"] if ordered else ["f9999", "f9998", "f9997"])
    assert found.result("data.yaml")[-1].message == "... and 9997 more problem(s), 10000 in all"


def test_a_roboflow_export_is_read_as_ultralytics_reads_it(tmp_path: Path) -> None:
    """Roboflow writes ``train: ../train/images`` beside its data.yaml and its folders; the
    entry does not exist as written, and (as ultralytics does) is read without the ``../``."""
    root = tmp_path / "repo" / "export"
    for split, folder in (("train", "train"), ("val", "valid"), ("test", "test")):
        _image(root / folder, "", f"{split}0", seed=len(split))
    (root / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n"
        "nc: 1\nnames: ['a']\nroboflow:\n  workspace: w\n  version: 1\n"
    )
    dataset, problems = read_dataset(root, tmp_path / "repo")
    assert problems == [] and dataset is not None
    assert {s: [p.relative_to(root).as_posix() for p in v] for s, v in dataset.images.items()} == {
        "train": ["train/images/train0.png"],
        "val": ["valid/images/val0.png"],
        "test": ["test/images/test0.png"],
    }
    (root / "data.yaml").write_text("train: ../nowhere/images\nval: ../valid/images\nnames: [a]\n")
    assert "'../nowhere/images'" in read_dataset(root, tmp_path / "repo")[1][0].format()
