"""``tango label import``: a Label Studio JSON export or a CVAT-for-images 1.1 XML file into the
project's data folder: class folders (classification) or YOLO ``images/train`` and
``labels/train`` (detection).

Every entry is checked (an image inside the export's folder, a known label, boxes inside the
image, no file of that name already in the data); a rejected entry is named with its reason and
skipped. Accepted files are staged in a temporary folder first and moved in only when the whole
file was read, so a malformed export changes nothing in the data folder.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from tango_ci.data.images import read_image
from tango_ci.exceptions import TangoError
from tango_ci.rundir import display

MAX_EXPORT_BYTES = 64 * 2**20


class _Entry:
    def __init__(self, where: str, image: str, label: str | None, boxes: list) -> None:
        self.where, self.image, self.label, self.boxes = where, image, label, boxes


def _label_studio(path: Path) -> list[_Entry]:
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TangoError(f"{display(path)}: not a Label Studio JSON export ({exc})") from None
    if not isinstance(tasks, list):
        raise TangoError(f"{display(path)}: a Label Studio export is a list of tasks")
    entries = []
    for number, task in enumerate(tasks):
        where = f"{display(path)}: task {number}"
        image = (task.get("data") or {}).get("image") if isinstance(task, dict) else None
        annotations = (
            [
                a
                for a in (task.get("annotations") or [])
                if isinstance(a, dict) and not a.get("was_cancelled")
            ]
            if isinstance(task, dict)
            else []
        )
        if not isinstance(image, str) or not annotations:
            entries.append(_Entry(where, "", None, [("no image or no annotation", None)]))
            continue
        label, boxes = None, []
        for item in annotations[-1].get("result") or []:
            value = item.get("value", {}) if isinstance(item, dict) else {}
            if item.get("type") == "choices" and value.get("choices"):
                label = str(value["choices"][0])
            elif item.get("type") == "rectanglelabels" and value.get("rectanglelabels"):
                boxes.append(("percent", value))
        entries.append(_Entry(where, image, label, boxes))
    return entries


def _cvat(path: Path) -> list[_Entry]:
    try:
        root = ET.fromstring(path.read_bytes())
    except ET.ParseError as exc:
        raise TangoError(f"{display(path)}: not CVAT XML ({exc})") from None
    if root.tag != "annotations":
        raise TangoError(f"{display(path)}: CVAT for images 1.1 starts with <annotations>")
    entries = []
    for number, image in enumerate(root.iter("image")):
        where = f"{display(path)}: image {number} ({image.get('name', '?')[:80]})"
        tag = image.find("tag")
        boxes = [("pixels", dict(box.attrib)) for box in image.iter("box")]
        entries.append(
            _Entry(
                where, image.get("name") or "", tag.get("label") if tag is not None else None, boxes
            )
        )
    return entries


def import_labels(
    export: Path,
    data: Path,
    labels: list[str],
    detection: bool,
    *,
    held: Path | None = None,
    fraction: float = 0.0,
) -> dict:
    """Import ``export`` into the data folder ``data``; returns what was imported and every
    rejected entry with its reason.

    With ``held`` (``gate.challenger.new_data``), ``fraction`` of each class's accepted images
    (the first by content hash, so the same export splits the same way) go there instead: the
    new data the next model is scored on beside production's, never trained on.
    """
    if held is not None and detection:
        raise TangoError("new data for the champion/challenger gate is for classification only")
    if export.is_symlink() or not export.is_file():
        raise TangoError(f"{display(export)}: not a regular file")
    if export.stat().st_size > MAX_EXPORT_BYTES:
        raise TangoError(f"{display(export)}: larger than {MAX_EXPORT_BYTES >> 20} MiB")
    entries = _cvat(export) if export.suffix.lower() == ".xml" else _label_studio(export)
    root = export.parent.resolve()
    staged = Path(tempfile.mkdtemp(prefix=".label-import-", dir=data.parent))
    accepted: list[str] = []
    rejected: list[str] = []
    try:
        for entry in entries:
            problem = _stage(entry, root, staged, data, labels, detection, held)
            (rejected if problem else accepted).append(
                f"{entry.where}: {problem}" if problem else entry.image
            )
        moved = _held_out(staged, held, fraction) if held is not None else {}
        for source in sorted(p for p in staged.rglob("*") if p.is_file()):
            relative = source.relative_to(staged)
            target = (held if held is not None and relative in moved else data) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(source), target)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return {"imported": len(accepted), "rejected": rejected, "held_out": len(moved)}


def _held_out(staged: Path, held: Path, fraction: float) -> set[Path]:
    """The staged images (paths relative to ``staged``) that go to the new-data folder."""
    import hashlib

    chosen: set[Path] = set()
    for folder in sorted(p for p in staged.iterdir() if p.is_dir()):
        images = sorted(folder.iterdir(), key=lambda p: hashlib.sha256(p.read_bytes()).hexdigest())
        count = round(len(images) * fraction)
        chosen.update(p.relative_to(staged) for p in images[:count])
    clash = next((p for p in chosen if (held / p).exists()), None)
    if clash is not None:
        raise TangoError(f"{clash.as_posix()} is already in {display(held)}; nothing was imported")
    return chosen


def _stage(
    entry: _Entry,
    root: Path,
    staged: Path,
    data: Path,
    labels: list[str],
    detection: bool,
    held: Path | None = None,
) -> str | None:
    if entry.boxes and entry.boxes[0][1] is None:
        return entry.boxes[0][0]
    source = (root / entry.image).resolve()
    if not source.is_relative_to(root) or not source.is_file():
        return f"image '{entry.image[:80]}' is not a file beside the export"
    try:  # allowed decoders only, bounded, upright as the labelling tool showed it
        height, width = read_image(source).shape[:2]
    except Exception:  # Pillow's decoders raise many kinds; all mean "not an image"
        return f"image '{entry.image[:80]}' is not an image"
    name = source.name
    if not detection:
        if entry.label not in labels:
            return f"label '{str(entry.label)[:40]}' is not one of {', '.join(labels)}"
        if any((folder / entry.label / name).exists() for folder in (data, staged)):
            return f"{entry.label}/{name} is already in the data"
        if held is not None and (held / entry.label / name).exists():
            return f"{entry.label}/{name} is already in the new data ({display(held)})"
        (staged / entry.label).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, staged / entry.label / name)
        return None
    rows = []
    for unit, value in entry.boxes:
        label = (
            (value.get("rectanglelabels") or [None])[0] if unit == "percent" else value.get("label")
        )
        if label not in labels:
            return f"box label '{str(label)[:40]}' is not one of {', '.join(labels)}"
        try:
            if unit == "percent":
                x, y = float(value["x"]) / 100, float(value["y"]) / 100
                w, h = float(value["width"]) / 100, float(value["height"]) / 100
            else:
                x1, y1 = float(value["xtl"]) / width, float(value["ytl"]) / height
                x, y = x1, y1
                w, h = float(value["xbr"]) / width - x1, float(value["ybr"]) / height - y1
        except (KeyError, TypeError, ValueError):
            return "a box lacks its coordinates"
        if not (x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= 1.0001 and y + h <= 1.0001):
            return "a box lies outside the image"
        rows.append(f"{labels.index(label)} {x + w / 2:.6f} {y + h / 2:.6f} {w:.6f} {h:.6f}")
    if (data / "images" / "train" / name).exists():
        return f"images/train/{name} is already in the data"
    (staged / "images" / "train").mkdir(parents=True, exist_ok=True)
    (staged / "labels" / "train").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, staged / "images" / "train" / name)
    (staged / "labels" / "train" / f"{source.stem}.txt").write_text("".join(r + "\n" for r in rows))
    return None
