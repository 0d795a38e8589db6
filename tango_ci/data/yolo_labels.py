"""YOLO label files: one box a line, ``class cx cy w h`` with coordinates normalised to the image
(as ultralytics sees it, after its EXIF rotation). Problems are ``file:line:col`` with the column
of the value at fault."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from tango_ci.data.files import FileRefused, decode_text, read_bytes, undecodable_line
from tango_ci.spec.problems import Problem

_TOKEN = re.compile(r"\S+")
_COORDINATES = ("cx", "cy", "w", "h")


def label_path(image: Path) -> Path:
    """ultralytics' rule: the last ``images`` folder of the path becomes ``labels``."""
    parts = list(image.parts)
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] == "images":
            parts[index] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _empty() -> np.ndarray:
    return np.zeros((0, 5), np.float32)


def read_label_file(path: Path, display: str) -> tuple[bytes | None, list[Problem]]:
    """A label file's bytes (a regular file, size-limited), or the problem instead."""
    try:
        return read_bytes(path), []
    except FileRefused as exc:
        return None, [Problem(display, 0, 0, "", f"label file refused: {exc.message}")]


def parse_labels(path: Path, classes: int, display: str) -> tuple[np.ndarray, list[Problem]]:
    """Boxes of one label file as (N, 5) [class, cx, cy, w, h]; problems per line."""
    raw, problems = read_label_file(path, display)
    if raw is None:
        return _empty(), problems
    return parse_label_bytes(raw, classes, display)


def parse_label_bytes(raw: bytes, classes: int, display: str) -> tuple[np.ndarray, list[Problem]]:
    """:func:`parse_labels` of a label file's content."""
    try:
        text = decode_text(raw)
    except UnicodeDecodeError as exc:
        where = undecodable_line(exc)
        return _empty(), [Problem(display, *where, "", "not UTF-8 text")]
    rows, problems = [], []
    for number, content in enumerate(text.splitlines(), 1):
        tokens = [(m.group(), m.start() + 1) for m in _TOKEN.finditer(content)]
        if not tokens:
            continue
        row, problem = _parse_line(tokens, classes)
        if problem is not None:
            col, message = problem
            problems.append(Problem(display, number, col, "", message))
        else:
            rows.append(row)
    return np.asarray(rows, np.float32).reshape(-1, 5), problems


def _parse_line(
    tokens: list[tuple[str, int]], classes: int
) -> tuple[list[float], tuple[int, str] | None]:
    """One label line's values, or the column and message of its first problem."""
    if len(tokens) != 5:
        return [], (1, f"expected 5 values (class cx cy w h), got {len(tokens)}")
    values = []
    for text, col in tokens:
        try:
            values.append(float(text))
        except ValueError:
            return [], (col, f"'{_short(text)}' is not a number")
    cls, cx, cy, w, h = values
    if not math.isfinite(cls) or cls != int(cls) or not 0 <= cls < classes:
        return [], (
            tokens[0][1],
            f"class {_short(tokens[0][0])} is not a class id of data.yaml (0..{classes - 1})",
        )
    for name, value, (text, col) in zip(_COORDINATES, values[1:], tokens[1:], strict=True):
        if not 0 <= value <= 1:  # NaN fails this too
            return [], (
                col,
                f"{name} {_short(text)} is outside 0..1 (coordinates are normalised)",
            )
    if w <= 0 or h <= 0:
        return [], (1, "box has zero width or height")
    if cx - w / 2 < -0.01 or cx + w / 2 > 1.01 or cy - h / 2 < -0.01 or cy + h / 2 > 1.01:
        return [], (1, "box reaches outside the image")
    return values, None


def _short(text: str, limit: int = 40) -> str:
    """A value for a message, cut so a huge token never floods the line."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
