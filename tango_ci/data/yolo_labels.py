"""YOLO label files: one box a line, ``class cx cy w h`` with coordinates normalised to the image
(as ultralytics sees it, after its EXIF rotation); or one polygon a line,
``class x1 y1 x2 y2 x3 y3 ...``, read as the box around it, as ultralytics does for a file whose
rows are polygons. Coordinates may reach 1% past the image's edge, as ultralytics allows.
Problems are ``file:line:col`` with the column of the value at fault, at most
:data:`MAX_PROBLEMS_PER_FILE` a file and then a line saying how many more."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tango_ci.data.files import FileRefused, decode_text, read_bytes, undecodable_line
from tango_ci.spec.problems import Problem

_TOKEN = re.compile(r"\S+")
_COORDINATES = ("cx", "cy", "w", "h")
_CLASS = re.compile(r"[0-9]+(?:\.0*)?")  # a whole number (7, 7.0), as ultralytics reads it
_TOLERANCE = 0.01  # ultralytics' 1% for coordinates a little past the image's edge
MAX_PROBLEMS_PER_FILE = 20


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
    """:func:`parse_labels` of a label file's content. Past :data:`MAX_PROBLEMS_PER_FILE`
    problems, one more line says how many follow (a file of garbage is one file's problem)."""
    try:
        text = decode_text(raw)
    except UnicodeDecodeError as exc:
        where = undecodable_line(exc)
        return _empty(), [Problem(display, *where, "", "not UTF-8 text")]
    lines = text.splitlines()
    # ultralytics reads the whole file as polygons when any row is longer than a box
    polygons = any(len(line.split()) > 6 for line in lines)
    rows: list[list[float]] = []
    problems: list[Problem] = []
    more, first_more = 0, 0  # problems past the cap, and the line of the first of them
    for number, content in enumerate(lines, 1):
        tokens = [(m.group(), m.start() + 1) for m in _TOKEN.finditer(content)]
        if not tokens:
            continue
        row, problem = _parse_polygon(tokens, classes) if polygons else _parse_box(tokens, classes)
        if problem is None:
            rows.append(row)
        elif len(problems) < MAX_PROBLEMS_PER_FILE:
            problems.append(Problem(display, number, problem[0], "", problem[1]))
        else:
            more += 1
            first_more = first_more or number
    if more:
        problems.append(
            Problem(display, first_more, 1, "", f"... and {more} more problems in this file")
        )
    return np.asarray(rows, np.float32).reshape(-1, 5), problems


def _parse_box(
    tokens: list[tuple[str, int]], classes: int
) -> tuple[list[float], tuple[int, str] | None]:
    """One box line's values, or the column and message of its first problem."""
    if len(tokens) != 5:
        return [], (1, f"expected 5 values (class cx cy w h), got {len(tokens)}")
    values, problem = _numbers(tokens, classes)
    if problem is not None:
        return [], problem
    _, cx, cy, w, h = values
    for name, value, (text, col) in zip(_COORDINATES, values[1:], tokens[1:], strict=True):
        low = 0 if name in ("w", "h") else -_TOLERANCE  # a size is never negative
        if not low <= value <= 1 + _TOLERANCE:  # NaN fails this too
            return [], (col, f"{name} {_short(text)} is outside 0..1 (coordinates are normalised)")
    if w <= 0 or h <= 0:
        return [], (1, "box has zero width or height")
    low, high = -_TOLERANCE, 1 + _TOLERANCE
    if cx - w / 2 < low or cx + w / 2 > high or cy - h / 2 < low or cy + h / 2 > high:
        return [], (1, "box reaches outside the image")
    return values, None


def _parse_polygon(
    tokens: list[tuple[str, int]], classes: int
) -> tuple[list[float], tuple[int, str] | None]:
    """One polygon line (``class x1 y1 x2 y2 x3 y3 ...``) as the box around its points, as
    ultralytics makes it (segments2boxes); or the column and message of its first problem."""
    if len(tokens) == 5:
        return [], (
            1,
            "a box among polygons: ultralytics refuses a file that mixes them; write this "
            "object as a polygon too (or every object as a box)",
        )
    if len(tokens) < 7 or len(tokens) % 2 == 0:
        return [], (
            1,
            "expected a polygon (class x1 y1 x2 y2 x3 y3 ...: x y pairs, at least 3 points), "
            f"got {len(tokens) - 1} values after the class",
        )
    values, problem = _numbers(tokens, classes)
    if problem is not None:
        return [], problem
    for index, (value, (text, col)) in enumerate(zip(values[1:], tokens[1:], strict=True)):
        if not -_TOLERANCE <= value <= 1 + _TOLERANCE:  # NaN fails this too
            name = f"{'xy'[index % 2]}{index // 2 + 1}"
            return [], (col, f"{name} {_short(text)} is outside 0..1 (coordinates are normalised)")
    xs, ys = values[1::2], values[2::2]
    left, top, right, bottom = min(xs), min(ys), max(xs), max(ys)
    box = [(left + right) / 2, (top + bottom) / 2, right - left, bottom - top]
    return [values[0], *box], None


def _numbers(
    tokens: list[tuple[str, int]], classes: int
) -> tuple[list[float], tuple[int, str] | None]:
    """A line's values as numbers with its class checked; or the column and message of the
    first that is not. Only ASCII numbers: float() would read ``0_1`` as 1 and Arabic digits."""
    values = []
    for text, col in tokens:
        if not text.isascii() or "_" in text:
            return [], (col, f"'{_short(text)}' is not a number")
        try:
            values.append(float(text))
        except ValueError:
            return [], (col, f"'{_short(text)}' is not a number")
    text, col = tokens[0]
    if not _CLASS.fullmatch(text) or not values[0] < classes:
        return [], (col, f"class {_short(text)} is not a class id of data.yaml (0..{classes - 1})")
    return values, None


def _short(text: str, limit: int = 40) -> str:
    """A value for a message, cut so a huge token never floods the line."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
