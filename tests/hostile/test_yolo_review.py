"""A YOLO dataset from a stranger, found by a probe: a data.yaml nested deep enough to stall the
YAML parser for minutes, class names that are markup, escapes or a forged workflow command,
so many problems that the check floods the terminal, ``nc`` or a key that contradicts the
rest."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tango_ci.data.layout import yolo_problem
from tango_ci.data.yolo import check_dataset
from tango_ci.data.yolo_yaml import MAX_CLASSES, MAX_DEPTH, MAX_NAME_CHARS
from tests.hostile.conftest import tango

HEAD = "train: images/train\nval: images/val\n"
DATA_YAML = HEAD + "names: [a, b, c]\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "yolo"
    for split, shade in (("train", 60), ("val", 120)):  # different images: no leakage warning
        (root / "images" / split).mkdir(parents=True)
        Image.fromarray(np.full((8, 8, 3), shade, np.uint8)).save(root / f"images/{split}/0.png")
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


def test_the_check_prints_at_most_two_hundred_problems(root: Path) -> None:
    for index in range(300):  # one problem each, in 300 label files
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / f"images/val/{index}x.png")
        (root / f"labels/val/{index}x.txt").write_text("7 0.5 0.5 0.2 0.2\n")
    result = tango("data", "check", str(root), cwd=root.parent)
    lines = result.stdout.splitlines()
    assert result.code == 1 and "Traceback" not in result.stderr
    assert len(lines) == 201 and lines[-1] == "... and 100 more problems"
    assert all("class 7 is not a class id" in line for line in lines[:-1])
