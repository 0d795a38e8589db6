"""``tango label import``: a Label Studio JSON export or a CVAT-for-images 1.1 XML file into the
project's data folder: class folders (classification) or YOLO ``images/train`` and
``labels/train`` (detection).

Every entry is checked (an image inside the export's folder, a known label, boxes inside the
image, no file of that name already in the data or this import; for detection no image or
labels of that stem either, as YOLO pairs them by stem); a rejected entry is named with its
reason and skipped. Accepted files are staged in a temporary folder first and moved in only when the whole
file was read, so a malformed export changes nothing in the data folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from tango_ci.data.images import read_image
from tango_ci.exceptions import TangoError
from tango_ci.rundir import display

MAX_EXPORT_BYTES = 64 * 2**20


class _Entry:
    def __init__(
        self, where: str, image: str, label: str | None, boxes: list, problem: str | None = None
    ) -> None:
        self.where, self.image, self.label, self.boxes = where, image, label, boxes
        self.problem = problem  # why the export's entry itself is unusable, or None


def _label_studio(path: Path) -> list[_Entry]:
    from tango_ci.jsonfiles import strict_json

    try:
        tasks = strict_json(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        reason = str(exc)[:120]
        raise TangoError(f"{display(path)}: not a Label Studio JSON export ({reason})") from None
    if not isinstance(tasks, list):
        raise TangoError(f"{display(path)}: a Label Studio export is a list of tasks")
    entries = []
    for number, task in enumerate(tasks):
        where = f"{display(path)}: task {number}"
        try:
            image, label, boxes = _task(task)
        except ValueError as exc:
            entries.append(_Entry(where, "", None, [], str(exc)))
        else:
            entries.append(_Entry(where, image, label, boxes))
    return entries


def _task(task: object) -> tuple[str, str | None, list]:
    """(image, class label, rectangle values) of one task; ``ValueError`` says what is off."""
    data = task.get("data") if isinstance(task, dict) else None
    image = data.get("image") if isinstance(data, dict) else None
    annotations = task.get("annotations") if isinstance(task, dict) else None
    if not isinstance(image, str) or not isinstance(annotations, list):
        raise ValueError("no image or no annotation")
    kept = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not kept:
        raise ValueError("no image or no annotation")
    results = kept[-1].get("result") or []
    if not isinstance(results, list):
        raise ValueError("the annotation's 'result' is not a list")
    label, boxes = None, []
    for item in results:
        if not isinstance(item, dict):
            raise ValueError("a result is not an object")
        kind = item.get("type")
        if kind not in ("choices", "rectanglelabels"):
            continue  # another kind of result (text, a relation): not imported
        value = item.get("value")
        if not isinstance(value, dict):
            raise ValueError(f"a '{kind}' result has no 'value' object")
        names = value.get(kind)
        if not names:
            continue
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise ValueError(f"a result's '{kind}' is not a list of label names")
        if kind == "choices":
            label = names[0]
        else:
            boxes.append(("percent", value))
    return image, label, boxes


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
    taken = _taken_stems(data) if detection else set()
    try:
        for entry in entries:
            problem = _stage(entry, root, staged, data, labels, detection, held, taken)
            (rejected if problem else accepted).append(
                f"{entry.where}: {problem}" if problem else entry.image
            )
        moved = _held_out(staged, held, fraction) if held is not None else set()
        plan = []
        for source in sorted(p for p in staged.rglob("*") if p.is_file()):
            relative = source.relative_to(staged)
            folder = held if held is not None and relative in moved else data
            plan.append((source, folder / relative))
        place_all(plan)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return {"imported": len(accepted), "rejected": rejected, "held_out": len(moved)}


def place_all(plan: list[tuple[Path, Path]]) -> None:
    """Move each staged file to its target, never over a file: one written there while the
    import ran (by hand, by another import) stops it, and the files already placed are taken
    back, so nothing is imported. The check is the link or the exclusive create itself, not
    a look before it."""
    placed: list[Path] = []
    try:
        for source, target in plan:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)  # fails on an existing target, never replaces it
            except FileExistsError:
                raise
            except OSError:  # no hard links here (another file system): an exclusive create
                with open(source, "rb") as read, open(target, "xb") as write:
                    shutil.copyfileobj(read, write)
            placed.append(target)
    except FileExistsError as exc:
        for target in placed:
            target.unlink(missing_ok=True)
        raise TangoError(
            f"{display(Path(str(exc.filename2 or exc.filename)))} appeared during the import; "
            "nothing was imported"
        ) from None


def _taken_stems(data: Path) -> set[str]:
    """The stems of the files in ``images/train`` and ``labels/train`` of a YOLO data folder."""
    folders = (data / "images" / "train", data / "labels" / "train")
    return {p.stem for folder in folders if folder.is_dir() for p in folder.iterdir()}


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
    taken: set[str] | None = None,
) -> str | None:
    """Stage one entry; the reason it is rejected, or None. ``taken``: the stems of the
    training images and labels in the data and staged so far (detection)."""
    taken = set() if taken is None else taken
    if entry.problem is not None:
        return entry.problem
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
        if (data / entry.label / name).exists():
            return f"{entry.label}/{name} is already in the data"
        if (staged / entry.label / name).exists():
            return f"{entry.label}/{name} comes twice in this import"
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
        except (KeyError, TypeError, ValueError, OverflowError):
            return "a box lacks its coordinates"
        if not (x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= 1.0001 and y + h <= 1.0001):
            return "a box lies outside the image"
        rows.append(f"{labels.index(label)} {x + w / 2:.6f} {y + h / 2:.6f} {w:.6f} {h:.6f}")
    # YOLO pairs an image with labels/train/<stem>.txt: a second image of that stem (x.jpg
    # beside x.png, or a/y.png and b/y.png in one export) would take the other's labels
    if source.stem in taken:
        return (
            f"an image or labels named '{source.stem}' are already in the data "
            "(images/train, labels/train) or in this import"
        )
    taken.add(source.stem)
    (staged / "images" / "train").mkdir(parents=True, exist_ok=True)
    (staged / "labels" / "train").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, staged / "images" / "train" / name)
    (staged / "labels" / "train" / f"{source.stem}.txt").write_text("".join(r + "\n" for r in rows))
    return None
