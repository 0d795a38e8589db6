"""A YOLO dataset from a stranger, found by a probe: a data.yaml nested deep enough to stall the
YAML parser for minutes, class names that are markup, escapes or a forged workflow command,
label files of nothing but problems, ``nc`` or a key that contradicts the rest; and labels
ultralytics trains on (polygons, coordinates a hair past 1) that must not be refused."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tango_ci.data.layout import yolo_problem
from tango_ci.data.yolo import check_dataset, load_split, read_dataset
from tango_ci.data.yolo_labels import MAX_PROBLEMS_PER_FILE
from tango_ci.data.yolo_yaml import MAX_CLASSES, MAX_DEPTH, MAX_NAME_CHARS
from tests.hostile.conftest import tango

HEAD = "train: images/train\nval: images/val\n"
DATA_YAML = HEAD + "names: [a, b, c]\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "yolo"
    for split, shade in (("train", 60), ("val", 120)):  # different images: no leakage warning
        (root / "images" / split).mkdir(parents=True)
        Image.fromarray(np.full((16, 16, 3), shade, np.uint8)).save(root / f"images/{split}/0.png")
        _label(root, split, "0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text(DATA_YAML)
    return root


def _label(root: Path, split: str, text: str) -> None:
    path = root / "labels" / split / "0.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _problems(root: Path) -> list[str]:
    _, _, problems = check_dataset(root, root.parent)
    return [p.format() for p in problems]


def test_a_deeply_nested_data_yaml_is_refused_in_moments(root: Path) -> None:
    """400 KB of brackets kept PyYAML's scanner busy for minutes before any limit was met."""
    depth = 200_000
    (root / "data.yaml").write_text(DATA_YAML + "x: " + "[" * depth + "]" * depth + "\n")
    start = time.monotonic()
    problems = _problems(root)
    validated = yolo_problem(root)  # what `tango validate` runs
    assert time.monotonic() - start < 10
    line = f"data.yaml:4:{3 + MAX_DEPTH}: nested deeper than {MAX_DEPTH} levels"
    assert problems == [line]
    assert validated == f"has a broken data.yaml ({line})"


def test_nesting_up_to_the_limit_is_read(root: Path) -> None:
    inner = MAX_DEPTH - 1  # the document's own mapping is one level
    (root / "data.yaml").write_text(DATA_YAML + "x: " + "[" * inner + "]" * inner + "\n")
    assert _problems(root) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEAD + "val: other\nnames: [a, b, c]\n", "data.yaml:3:1: key 'val' is written twice"),
        (HEAD + "names: {0: a, 1: b, 0: c}\n", "data.yaml:3:21: key '0' is written twice"),
        ("nc: 5\n" + DATA_YAML, "data.yaml:1:5: nc: says 5 classes but names has 3"),
        (
            "nc: three\n" + DATA_YAML,
            "data.yaml:1:5: nc: must be a whole number (the number of classes), got 'three'",
        ),
        (
            "nc: 2.5\n" + DATA_YAML,
            "data.yaml:1:5: nc: must be a whole number (the number of classes), got the float "
            "'2.5'",
        ),
        (
            HEAD + f"names: [a, {'n' * 300}]\n",
            f"data.yaml:3:12: names: class 1's name has 300 characters, more than the "
            f"{MAX_NAME_CHARS} allowed",
        ),
        (
            HEAD + "names:\n  1: b\n  0: [a]\n",
            "data.yaml:5:6: names: class 0 must be a name (text), got a list; quote it",
        ),
        (
            HEAD + f"names: [{', '.join(f'c{i}' for i in range(MAX_CLASSES + 1))}]\n",
            f"data.yaml:3:8: names: {MAX_CLASSES + 1} classes, more than the {MAX_CLASSES} allowed",
        ),
    ],
)
def test_data_yaml_contradictions_are_refused_in_one_line(
    root: Path, text: str, expected: str
) -> None:
    (root / "data.yaml").write_text(text)
    assert _problems(root) == [expected]


@pytest.mark.parametrize("nc", ["3", "3.0", "'3'"])
def test_nc_that_agrees_with_the_names_is_fine(root: Path, nc: str) -> None:
    (root / "data.yaml").write_text(f"nc: {nc}\n" + DATA_YAML)
    assert _problems(root) == []


def test_class_names_are_printed_as_text_on_one_line(root: Path) -> None:
    """Markup that crashed rich, markup rich obeyed, a terminal title escape, a forged GitHub
    workflow command on a line of its own (also after a wrap at a space)."""
    names = ["[/red]", "[bold]c[/bold]", "t\x1b]0;owned\x07", "q\n::error ::forged", "a ::error x"]
    quoted = ", ".join('"' + n.encode("unicode_escape").decode() + '"' for n in names)
    (root / "data.yaml").write_text(HEAD + f"names: [{quoted}]\n")
    result = tango("data", "check", str(root), cwd=root.parent, env={"COLUMNS": "40"})
    assert result.code == 0 and "Traceback" not in result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert not any(line.startswith("::") for line in result.stderr.splitlines())
    valid = [line for line in result.stderr.splitlines() if line.startswith("valid: ")]
    assert valid == [
        "valid: 2 images (train 1, val 1), 2 boxes ([/red] 2, [bold]c[/bold] 0, "
        "t\\x1b]0;owned\\x07 0, q\\n::error ::forged 0, a ::error x 0)"
    ]


def test_a_label_file_of_garbage_is_one_bounded_report(root: Path) -> None:
    bad = 3000
    _label(root, "val", "x\n" * bad)
    problems = _problems(root)
    assert len(problems) == MAX_PROBLEMS_PER_FILE + 1
    assert problems[0] == "labels/val/0.txt:1:1: expected 5 values (class cx cy w h), got 1"
    first_left = MAX_PROBLEMS_PER_FILE + 1
    assert problems[-1] == (
        f"labels/val/0.txt:{first_left}:1: ... and {bad - MAX_PROBLEMS_PER_FILE} more problems "
        "in this file"
    )


def test_the_check_prints_at_most_two_hundred_problems(root: Path) -> None:
    for index in range(300):  # one problem each, in 300 label files
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / f"images/val/{index}x.png")
        (root / f"labels/val/{index}x.txt").write_text("7 0.5 0.5 0.2 0.2\n")
    result = tango("data", "check", str(root), cwd=root.parent)
    lines = result.stdout.splitlines()
    assert result.code == 1 and "Traceback" not in result.stderr
    assert len(lines) == 201 and lines[-1].endswith("... and 100 more problem(s), 300 in all")
    assert all("class 7 is not a class id" in line for line in lines[:-1])


def test_polygon_rows_are_read_as_the_box_around_them(root: Path) -> None:
    """ultralytics reads a file whose rows are polygons as their boxes (segments2boxes)."""
    _label(root, "val", "1 0.1 0.2 0.5 0.2 0.3 0.6\n2 0.4 0.4 0.6 0.4 0.6 0.8 0.4 0.8\n")
    dataset, problems = read_dataset(root, root.parent)
    assert dataset is not None and problems == [] and _problems(root) == []
    boxes = load_split(dataset, "val", 8)["boxes"][0]  # pixels of the 8x8 image
    assert boxes.ravel().tolist() == pytest.approx([1, 0.8, 1.6, 4, 4.8, 2, 3.2, 3.2, 4.8, 6.4])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # ultralytics refuses the whole file: a 5-value row among polygons is not a box
            "0 0.1 0.1 0.4 0.1 0.4 0.4\n0 0.5 0.5 0.2 0.2\n",
            "2:1: a box among polygons: ultralytics refuses a file that mixes them; write this "
            "object as a polygon too (or every object as a box)",
        ),
        (
            "0 0.1 0.1 0.4 0.1 0.4 0.4\n0 0.1 0.1 0.4 0.1 0.4 0.4 0.9\n",
            "2:1: expected a polygon (class x1 y1 x2 y2 x3 y3 ...: x y pairs, at least 3 "
            "points), got 7 values after the class",
        ),
        (
            "0 0.1 0.1 0.4 1.5 0.4 0.4\n",
            "1:15: y2 1.5 is outside 0..1 (coordinates are normalised)",
        ),
        ("0 1.02 0.5 0.01 0.2\n", "1:3: cx 1.02 is outside 0..1 (coordinates are normalised)"),
        ("0 0.5 0.5 -0.1 0.2\n", "1:11: w -0.1 is outside 0..1 (coordinates are normalised)"),
        ("0_1 0.5 0.5 0.2 0.2\n", "1:1: '0_1' is not a number"),  # float() read it as 1
        ("\u0661 0.5 0.5 0.2 0.2\n", "1:1: '\u0661' is not a number"),  # and this as 1
        ("1e0 0.5 0.5 0.2 0.2\n", "1:1: class 1e0 is not a class id of data.yaml (0..2)"),
        ("0 0.5 0.5 0.2 0_2\n", "1:15: '0_2' is not a number"),
        ("0 0.5 0.5 0.2 \u0660.\u0662\n", "1:15: '\u0660.\u0662' is not a number"),
    ],
)
def test_label_rows_ultralytics_refuses_are_refused_at_their_column(
    root: Path, text: str, expected: str
) -> None:
    _label(root, "val", text)
    assert _problems(root) == [f"labels/val/0.txt:{expected}"]


@pytest.mark.parametrize(
    "text",
    [
        "0 1.0000001 0.5 0.01 0.2\n",  # float noise of an exporter: ultralytics allows 1.01
        "0 0.5 0.5 1.005 0.2\n",
        "0 0.995 0.5 0.02 0.2\n",  # the box's edge at 1.005
        "1.0 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n",  # a whole class written as a float
    ],
)
def test_labels_ultralytics_accepts_are_accepted(root: Path, text: str) -> None:
    _label(root, "val", text)
    assert _problems(root) == []
