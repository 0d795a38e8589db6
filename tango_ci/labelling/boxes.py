"""A labelling tool's rectangle as the upright box YOLO trains on.

Rotation conventions (both clockwise on screen, as the image's y axis points down):

- Label Studio: ``value.x``/``y`` are the top-left corner in percent of the image, and the
  rectangle is turned by ``value.rotation`` degrees about that corner (RectangleLabels docs,
  "Annotation results store the left top corner of the bounding box"; label-studio-sdk's
  ``convert_annotation_to_yolo_obb`` puts the corners at ``(x, y)``, ``(x + w cos, y + w sin)``,
  ``(x + w cos - h sin, y + w sin + h cos)``, ``(x - h sin, y + h cos)`` in pixels).
- CVAT: ``<box xtl ytl xbr ybr rotation>`` in pixels, turned by ``rotation`` degrees about the
  box's centre (docs.cvat.ai, "Annotation with rectangles": "rotation is done around the
  center of the rectangle"). The upright box around it is the same either way round.

A rotated rectangle becomes the upright box around it, cut to the image (its corners may
stand out of the image while the object does not). An upright one may stand out by at most
:data:`EDGE_PIXELS` (a tool's rounding, ``-0.0001`` percent) and is cut; further out it is
refused. A negative width or height (a flipped resize) spans the same rectangle.
"""

from __future__ import annotations

import math

from tango_ci.labelling._base import Box

EDGE_PIXELS = 1.0


def upright_box(box: Box, width: int, height: int) -> tuple[float, float, float, float]:
    """``(x1, y1, x2, y2)`` of ``box`` in the image ``width`` x ``height``, as fractions of
    its sides; ``ValueError`` says why there is none."""
    scale_x, scale_y = (width / 100, height / 100) if box.unit == "percent" else (1.0, 1.0)
    x, y = box.x * scale_x, box.y * scale_y
    w, h = box.width * scale_x, box.height * scale_y
    if not all(map(math.isfinite, (x, y, w, h))):
        raise ValueError("a box lacks its coordinates")
    if is_rotated(box):
        xs, ys = _turned_corners(x, y, w, h, box.rotation, box.pivot)
    else:
        xs, ys = [x, x + w], [y, y + h]
    x1, x2, y1, y2 = min(xs), max(xs), min(ys), max(ys)
    if not is_rotated(box) and (
        x1 < -EDGE_PIXELS or y1 < -EDGE_PIXELS or x2 > width + EDGE_PIXELS
        or y2 > height + EDGE_PIXELS
    ):  # fmt: skip
        raise ValueError("a box lies outside the image")
    x1, x2 = max(x1, 0.0), min(x2, float(width))
    y1, y2 = max(y1, 0.0), min(y2, float(height))
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        raise ValueError("a box has no area inside the image")
    return x1 / width, y1 / height, x2 / width, y2 / height


def is_rotated(box: Box) -> bool:
    """Whether ``box`` is turned by other than a whole turn."""
    return math.isfinite(box.rotation) and box.rotation % 360 != 0


def _turned_corners(
    x: float, y: float, w: float, h: float, degrees: float, pivot: str
) -> tuple[list[float], list[float]]:
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    if pivot == "centre":
        cx, cy = x + w / 2, y + h / 2
        offsets = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    else:
        cx, cy = x, y
        offsets = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]
    xs = [cx + dx * cos - dy * sin for dx, dy in offsets]
    ys = [cy + dx * sin + dy * cos for dx, dy in offsets]
    return xs, ys


def yolo_row(index: int, corners: tuple[float, float, float, float]) -> str:
    """A YOLO label line: class index, centre, width and height as fractions."""
    x1, y1, x2, y2 = corners
    return f"{index} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}"
