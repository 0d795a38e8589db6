"""CVAT for images 1.1 XML: ``<image name width height>`` with ``<tag>`` (the class) and
``<box>`` es (pixels, ``rotation`` in degrees about the box's centre).

An image is found beside the export under its ``name``, then under ``images/`` (CVAT's zip
holds ``annotations.xml`` and ``images/<name>``; a project's, ``images/<subset>/<name>``).
Any shape other than a box (polygon, polyline, points, ellipse, mask, cuboid, skeleton)
rejects its image for detection, as it has no box to give. CVAT for video (tracks) is
refused as a whole: its boxes belong to frames, not images.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

from tango_ci.exceptions import TangoError
from tango_ci.labelling._base import BaseExportFormat, Box, Entry, labels_problem, shape_problem
from tango_ci.labelling.sources import with_images_folder

#: CVAT's shapes other than boxes, by element name
SHAPES = {
    "polygon": "a polygon",
    "polyline": "a polyline",
    "points": "points",
    "ellipse": "an ellipse",
    "mask": "a mask",
    "cuboid": "a cuboid",
    "skeleton": "a skeleton",
}


class CvatFormat(BaseExportFormat):
    name = "CVAT for images 1.1 XML"
    suffixes = (".xml",)

    def read(self, path: Path, shown: str) -> list[Entry]:
        try:
            root = ET.fromstring(path.read_bytes())
        except (ET.ParseError, RecursionError) as exc:
            raise TangoError(f"{shown}: not CVAT XML ({str(exc)[:120]})") from None
        if root.tag != "annotations":
            raise TangoError(f"{shown}: CVAT for images 1.1 starts with <annotations>")
        images = list(root.iter("image"))
        if not images and root.find("track") is not None:
            raise TangoError(
                f"{shown}: CVAT for video 1.1 (tracks of frames); export the task as "
                "CVAT for images 1.1"
            )
        return [_entry(shown, number, image) for number, image in enumerate(images)]


def _entry(shown: str, number: int, image: ET.Element) -> Entry:
    name = image.get("name") or ""
    entry = Entry(shown, f"image {number} ({name[:80]})", image=name)
    subset = image.get("subset")
    names = [name, *([f"images/{subset}/{name}"] if subset and "/" not in subset else [])]
    entry.candidates = with_images_folder(names)
    tags = sorted({t.get("label") or "" for t in image.findall("tag")})
    entry.label = tags[0] if tags else None
    if len(tags) > 1:
        shown = ", ".join(f"'{t[:40]}'" for t in tags[:5])
        entry.label_problem = f"has {len(tags)} tags ({shown}); an image gets one class"
    entry.size = _declared_size(image)
    shapes = []
    for element in image:
        if element.tag == "box":
            _add_box(entry, element)
        elif element.tag != "tag":
            shapes.append(SHAPES.get(element.tag, f"a {element.tag[:40]}"))
    if shapes and entry.box_problem is None:
        entry.box_problem = shape_problem(shapes)
    return entry


def _declared_size(image: ET.Element) -> tuple[int, int] | None:
    try:
        width, height = int(image.get("width", "")), int(image.get("height", ""))
    except ValueError:
        return None
    return (width, height) if width > 0 and height > 0 else None


def _add_box(entry: Entry, box: ET.Element) -> None:
    label = box.get("label")
    try:
        x1, y1, x2, y2 = (float(box.get(k, "")) for k in ("xtl", "ytl", "xbr", "ybr"))
        rotation = float(box.get("rotation") or 0)
    except ValueError:
        entry.box_problem = entry.box_problem or "a box lacks its coordinates"
        return
    if not all(map(math.isfinite, (x1, y1, x2, y2, rotation))):
        entry.box_problem = entry.box_problem or "a box lacks its coordinates"
        return
    labels = (label,) if label else ()
    entry.box_problem = entry.box_problem or labels_problem(labels)
    entry.boxes.append(Box(labels, "pixels", x1, y1, x2 - x1, y2 - y1, rotation, "centre"))
