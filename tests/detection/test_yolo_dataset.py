"""A broken YOLO dataset corpus: each case gives its exact file:line error, no traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tango_ci import api
from tango_ci.data.synth import SynthRequest, synthesize


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("yolo") / "shapes"
    synthesize(SynthRequest(out=out, task="detection", images_per_class=3, size=32, seed=0))
    return out


def _edit_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def _break(root: Path, case: str) -> None:
    labels = root / "labels" / "train"
    if case == "missing-label":
        (labels / "00003.txt").unlink()
    elif case == "field-count":
        (labels / "00004.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2\n")
    elif case == "not-a-number":
        (labels / "00004.txt").write_text("0 abc 0.5 0.2 0.2\n")
    elif case == "unknown-class":
        (root / "labels" / "val" / "00000.txt").write_text("7 0.5 0.5 0.2 0.2\n")
    elif case == "fractional-class":
        (labels / "00005.txt").write_text("1.5 0.5 0.5 0.2 0.2\n")
    elif case == "out-of-range":
        (labels / "00005.txt").write_text("0 0.5 0.5 0.2 0.2\n2 1.5 0.5 0.2 0.2\n")
    elif case == "zero-size":
        (labels / "00006.txt").write_text("0 0.5 0.5 -0.1 0.2\n")
    elif case == "empty-image":
        (root / "images" / "train" / "00007.png").write_bytes(b"")
    elif case == "yaml-no-names":
        (root / "data.yaml").write_text("train: images/train\nval: images/val\n")
    elif case == "yaml-missing-split":
        (root / "data.yaml").write_text(
            "train: images/train\nval: images/val2\nnames: [circle, square, triangle]\n"
        )
    elif case == "yaml-malformed":
        (root / "data.yaml").write_text("train: images/train\nval: [images/val\nnames: []\n")


CASES = {
    "field-count": "labels/train/00004.txt:2:1: expected 5 values (class cx cy w h), got 4",
    "not-a-number": "labels/train/00004.txt:1:3: 'abc' is not a number",
    "unknown-class": "labels/val/00000.txt:1:1: class 7 is not a class id of data.yaml (0..2)",
    "fractional-class": "labels/train/00005.txt:1:1: class 1.5 is not a class id of data.yaml "
    "(0..2)",
    "out-of-range": "labels/train/00005.txt:2:3: cx 1.5 is outside 0..1 (coordinates are "
    "normalised)",
    "zero-size": "labels/train/00006.txt:1:11: w -0.1 is outside 0..1 (coordinates are normalised)",
    "empty-image": "images/train/00007.png: image cannot be read (empty or corrupt)",
    "yaml-no-names": "data.yaml:1:1: missing required field 'names'",
    "yaml-missing-split": "data.yaml:2:6: val: folder 'images/val2' does not exist",
    "yaml-malformed": "data.yaml:3:6: invalid YAML: expected ',' or ']', but got ':'",
}


def test_clean_dataset_has_no_problems(clean: Path) -> None:
    stats, problems = api.check_yolo_dataset(clean)
    assert problems == []
    assert stats["images"] == {"train": 7, "val": 2}
    assert sum(stats["per_class"].values()) == stats["boxes"]["train"] + stats["boxes"]["val"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_dataset(clean: Path, tmp_path: Path, monkeypatch, case: str) -> None:
    root = tmp_path / "data"
    shutil.copytree(clean, root)
    _break(root, case)
    _, problems = api.check_yolo_dataset(root)
    assert [p.format() for p in problems] == [CASES[case]]


def test_cli_prints_the_lines_and_exits_one(clean: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(clean, root)
    _break(root, "unknown-class")
    _break(root, "zero-size")
    result = subprocess.run(
        [sys.executable, "-m", "tango_ci", "data", "check", str(root)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stdout.splitlines() == [CASES["zero-size"], CASES["unknown-class"]]


MENDED = {
    "missing-label": (
        "images/train/00003.png",
        None,
        "1 image(s) without a label file, taken as images without objects (as ultralytics "
        "takes them); first: labels/train/00003.txt",
    ),
    "zero-size": (
        "labels/train/00006.txt",
        "0 0.5 0.5 0.0 0.2\n1 0.5 0.5 0.3 0.2\n",
        "1 box(es) of no width or height dropped (ultralytics drops them when it trains), in 1 "
        "file(s); first: labels/train/00006.txt",
    ),
    "outside-image": (
        "labels/train/00006.txt",
        "0 0.95 0.5 0.3 0.2\n1 0.5 0.5 0.3 0.2\n",
        "1 box(es) reaching past the image's edge cut at it (as ultralytics cuts them), in 1 "
        "file(s); first: labels/train/00006.txt",
    ),
}


@pytest.mark.parametrize("case", sorted(MENDED))
def test_what_ultralytics_mends_is_mended_and_warned_of(
    clean: Path, tmp_path: Path, case: str
) -> None:
    """A missing label file, a box of no area and a box past the image's edge: ultralytics
    trains on them (no objects; dropped; cut at the edge), so the check takes them the same
    way, counts them and says so, rather than refusing the whole dataset."""
    root = tmp_path / "data"
    shutil.copytree(clean, root)
    file, content, warning = MENDED[case]
    before = api.check_yolo_dataset(root)[0]
    if content is None:
        (root / "labels" / "train" / "00003.txt").unlink()
    else:
        (root / file).write_text(content)
    stats, problems = api.check_yolo_dataset(root)
    assert problems == [] and stats["warnings"] == [warning]
    if case == "missing-label":
        assert stats["unlabelled_images"] == 1
        assert stats["background_images"] == before["background_images"] + 1
    else:
        assert stats["clipped_boxes" if case == "outside-image" else "empty_boxes"] == 1
    from tango_ci.data.yolo import read_dataset
    from tango_ci.data.yolo_labels import parse_labels

    dataset, _ = read_dataset(root)
    assert dataset is not None
    if case == "outside-image":  # cut at the right edge: 0.8..1.0
        rows = parse_labels(root / file, 3, file)[0]
        assert rows[0].tolist() == pytest.approx([0, 0.9, 0.5, 0.2, 0.2])


def test_an_image_in_two_splits_is_warned_of_not_refused(clean: Path, tmp_path: Path) -> None:
    """A validation image the model trained on scores too well: said by check and the data
    stage, while the dataset stays usable."""
    root = tmp_path / "data"
    shutil.copytree(clean, root)
    shutil.copy(root / "images" / "train" / "00002.png", root / "images" / "val" / "copy.png")
    shutil.copy(root / "labels" / "train" / "00002.txt", root / "labels" / "val" / "copy.txt")
    stats, problems = api.check_yolo_dataset(root)
    assert problems == [] and stats["images"]["val"] == 3
    assert stats["warnings"] == [
        "1 image(s) are identical to one in another split (leakage between splits); first: "
        "images/train/00002.png and images/val/copy.png"
    ]
    result = subprocess.run(
        [sys.executable, "-m", "tango_ci", "data", "check", str(root)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert result.stderr.splitlines()[0].startswith("warning: 1 image(s) are identical")
    assert api.check_yolo_dataset(clean)[0]["warnings"] == []
