"""YOLO label files: one box a line, ``class cx cy w h`` with coordinates normalised to the image
(as ultralytics sees it, after its EXIF rotation); or one polygon a line,
``class x1 y1 x2 y2 x3 y3 ...``, read as the box around it, as ultralytics does for a file whose
rows are polygons; or, when data.yaml has ``kpt_shape``, pose rows (a box, then the keypoints),
read as their box. Values may reach 1% past the image's edge, as ultralytics allows.

What ultralytics accepts and mends when it trains is mended here the same way, counted and
warned of rather than refused: a repeated line is one object, a box reaching past the image's
edge is cut at it, and a box with no area left is dropped. Problems are ``file:line:col`` with
the column of the value at fault, at most :data:`MAX_PROBLEMS_PER_FILE` a file and then a line
saying how many more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tango_ci.data.files import FileRefused, decode_text, read_bytes, undecodable_line
from tango_ci.spec.problems import Problem

_TOKEN = re.compile(r"\S+")
_COORDINATES = ("cx", "cy", "w", "h")
_CLASS = re.compile(r"[0-9]+(?:\.0*)?")  # a whole number (7, 7.0), as ultralytics reads it
_TOLERANCE = 0.01  # ultralytics' 1% for coordinates a little past the image's edge
MAX_PROBLEMS_PER_FILE = 20


@dataclass
class LabelFile:
    """One label file read: its boxes (N, 5) [class, cx, cy, w, h] as training sees them, its
    problems, and how many objects were mended on the way."""

    rows: np.ndarray
    problems: list[Problem] = field(default_factory=list)
    duplicates: int = 0  # repeated lines, kept once
    clipped: int = 0  # boxes reaching past the image's edge, cut at it
    degenerate: int = 0  # boxes of no width or height (after the cut), dropped


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


def parse_labels(
    path: Path, classes: int, display: str, keypoints: tuple[int, int] | None = None
) -> tuple[np.ndarray, list[Problem]]:
    """Boxes of one label file as (N, 5) [class, cx, cy, w, h]; problems per line."""
    raw, problems = read_label_file(path, display)
    if raw is None:
        return _empty(), problems
    return parse_label_bytes(raw, classes, display, keypoints)


def parse_label_bytes(
    raw: bytes, classes: int, display: str, keypoints: tuple[int, int] | None = None
) -> tuple[np.ndarray, list[Problem]]:
    """:func:`read_labels`' boxes and problems."""
    found = read_labels(raw, classes, display, keypoints)
    return found.rows, found.problems


def read_labels(
    raw: bytes, classes: int, display: str, keypoints: tuple[int, int] | None = None
) -> LabelFile:
    """A label file's content read, with ``keypoints`` = data.yaml's ``kpt_shape`` (rows of
    ``5 + n * dims`` values are a box and its keypoints). Past :data:`MAX_PROBLEMS_PER_FILE`
    problems, one more line says how many follow (a file of garbage is one file's problem)."""
    try:
        text = decode_text(raw)
    except UnicodeDecodeError as exc:
        where = undecodable_line(exc)
        return LabelFile(_empty(), [Problem(display, *where, "", "not UTF-8 text")])
    pose = 5 + keypoints[0] * keypoints[1] if keypoints else 0
    lines = []
    for number, content in enumerate(text.splitlines(), 1):
        tokens = [(m.group(), m.start() + 1) for m in _TOKEN.finditer(content)]
        if tokens:  # ultralytics keeps a pose row's box for a detection task
            lines.append((number, tokens[:5] if len(tokens) == pose else tokens))
    # ultralytics reads the whole file as polygons when any row is longer than a box
    polygons = any(len(tokens) > 6 for _, tokens in lines)
    found = LabelFile(_empty())
    rows: list[list[float]] = []
    seen: set[tuple[float, ...]] = set()
    more, first_more = 0, 0  # problems past the cap, and the line of the first of them
    for number, tokens in lines:
        parse = _parse_polygon if polygons else _parse_box
        values, box, problem = parse(tokens, classes)
        if problem is not None:
            if len(found.problems) < MAX_PROBLEMS_PER_FILE:
                found.problems.append(Problem(display, number, problem[0], "", problem[1]))
            else:
                more += 1
                first_more = first_more or number
            continue
        # ultralytics' rule: identical float32 rows (a polygon's class and points) are one
        key = tuple(np.asarray(values, np.float32).tolist())
        if key in seen:
            found.duplicates += 1
            continue
        seen.add(key)
        clipped = _clip(box)
        if clipped is None:
            found.degenerate += 1
            continue
        found.clipped += int(clipped != box)
        rows.append([values[0], *clipped])
    if more:
        found.problems.append(
            Problem(display, first_more, 1, "", f"... and {more} more problems in this file")
        )
    found.rows = np.asarray(rows, np.float32).reshape(-1, 5)
    return found


def _clip(box: list[float]) -> list[float] | None:
    """``box`` (cx, cy, w, h) cut at the image's edges, as ultralytics cuts it when it trains;
    None when no area is left."""
    cx, cy, w, h = box
    left, right = max(cx - w / 2, 0.0), min(cx + w / 2, 1.0)
    top, bottom = max(cy - h / 2, 0.0), min(cy + h / 2, 1.0)
    if right - left <= 0 or bottom - top <= 0:
        return None
    if (left, right, top, bottom) == (cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2):
        return box
    return [(left + right) / 2, (top + bottom) / 2, right - left, bottom - top]


Parsed = tuple[list[float], list[float], tuple[int, str] | None]


def _parse_box(tokens: list[tuple[str, int]], classes: int) -> Parsed:
    """One box line's values and box, or the column and message of its first problem."""
    if len(tokens) != 5:
        return [], [], (1, f"expected 5 values (class cx cy w h), got {len(tokens)}")
    values, problem = _numbers(tokens, classes)
    if problem is not None:
        return [], [], problem
    for name, value, (text, col) in zip(_COORDINATES, values[1:], tokens[1:], strict=True):
        low = 0 if name in ("w", "h") else -_TOLERANCE  # a size is never negative
        if not low <= value <= 1 + _TOLERANCE:  # NaN fails this too
            return (
                [],
                [],
                (col, f"{name} {_short(text)} is outside 0..1 (coordinates are normalised)"),
            )
    return values, values[1:], None


def _parse_polygon(tokens: list[tuple[str, int]], classes: int) -> Parsed:
    """One polygon line (``class x1 y1 x2 y2 x3 y3 ...``) and the box around its points, as
    ultralytics makes it (segments2boxes); or the column and message of its first problem.
    Points may lie outside the image as long as that box's values are within ultralytics'
    bounds (it is cut at the edges then)."""
    if len(tokens) == 5:
        return (
            [],
            [],
            (
                1,
                "a box among polygons: ultralytics refuses a file that mixes them; write this "
                "object as a polygon too (or every object as a box)",
            ),
        )
    if len(tokens) < 7 or len(tokens) % 2 == 0:
        return (
            [],
            [],
            (
                1,
                "expected a polygon (class x1 y1 x2 y2 x3 y3 ...: x y pairs, at least 3 points), "
                f"got {len(tokens) - 1} values after the class",
            ),
        )
    values, problem = _numbers(tokens, classes)
    if problem is not None:
        return [], [], problem
    xs, ys = values[1::2], values[2::2]
    left, top, right, bottom = min(xs), min(ys), max(xs), max(ys)
    box = [(left + right) / 2, (top + bottom) / 2, right - left, bottom - top]
    low, high = -_TOLERANCE, 1 + _TOLERANCE
    if all(np.isfinite(values)) and all(low <= v <= high for v in box):
        return values, box, None
    for index, (value, (text, col)) in enumerate(zip(values[1:], tokens[1:], strict=True)):
        if not low <= value <= high:  # NaN fails this too
            name = f"{'xy'[index % 2]}{index // 2 + 1}"
            return (
                [],
                [],
                (col, f"{name} {_short(text)} is outside 0..1 (coordinates are normalised)"),
            )
    return [], [], (1, "the polygon is wider or taller than the image (coordinates are normalised)")


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
