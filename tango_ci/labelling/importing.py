"""``tango label import``: a Label Studio JSON export, a CVAT-for-images 1.1 XML file, or a
``.zip`` of either with its images, into the project's data folder: class folders
(classification) or YOLO ``images/train`` and ``labels/train`` (detection).

Every entry is checked, and a rejected one is named with its reason and skipped: its image
is a file inside the export's folder (:mod:`.sources`) that the data stage reads (an image's
suffix, not hidden) and that decodes; for classification a known class, and an image whose
content is not already in the data or the new-data folder (an import never relabels: it says
where the image is) nor given two classes in this export; for detection rectangles only
(:mod:`.boxes`: rotated ones as the upright box around them), known labels, and no image or
labels of that stem already in the data or this import, as YOLO pairs them by stem.

Accepted files are staged in a temporary folder first and moved in only when the whole file
was read, so a malformed export changes nothing in the data folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from tango_ci.exceptions import TangoError
from tango_ci.labelling._base import BaseExportFormat, Entry, Staged
from tango_ci.labelling._classes import stage_classes
from tango_ci.labelling._cvat import CvatFormat
from tango_ci.labelling._label_studio import LabelStudioFormat
from tango_ci.labelling.boxes import is_rotated, upright_box, yolo_row
from tango_ci.labelling.sources import MAX_ZIP_BYTES, archived_export, image_source
from tango_ci.labelling.sources import unpack as unpack_zip
from tango_ci.rundir import display

MAX_EXPORT_BYTES = 64 * 2**20

#: the export formats read, by name
FORMATS: dict[str, BaseExportFormat] = {
    "label-studio": LabelStudioFormat(),
    "cvat": CvatFormat(),
}


def export_format(path: Path) -> BaseExportFormat:
    """The format of ``path``, by its suffix; an unknown one is refused listing the valid."""
    for kind in FORMATS.values():
        if path.suffix.lower() in kind.suffixes:
            return kind
    known = ", ".join(f"{k.name} ({' '.join(k.suffixes)})" for k in FORMATS.values())
    raise TangoError(f"{display(path)}: not an export this reads: {known}, or a .zip of one")


def import_labels(
    export: Path,
    data: Path,
    labels: list[str],
    detection: bool,
    *,
    held: Path | None = None,
    fraction: float = 0.0,
) -> dict:
    """Import ``export`` into the data folder ``data``; returns what was imported, every
    rejected entry with its reason, and how many rotated boxes were imported upright.

    With ``held`` (``gate.challenger.new_data``), ``fraction`` of each class's accepted images
    (the first by content hash, so the same export splits the same way) go there instead: the
    new data the next model is scored on beside production's, never trained on.
    """
    if held is not None and detection:
        raise TangoError("new data for the champion/challenger gate is for classification only")
    if export.is_symlink() or not export.is_file():
        raise TangoError(f"{display(export)}: not a regular file")
    work = Path(tempfile.mkdtemp(prefix=".label-import-", dir=data.parent))
    try:
        path, shown = _export_file(export, work / "export")
        entries = export_format(path).read(path, shown)
        staged = work / "staged"
        staged.mkdir()
        root = path.parent.resolve()
        if detection:
            found = _stage_boxes(entries, root, staged, data, labels)
        else:
            found = stage_classes(entries, root, staged, data, labels, held)
        moved = _held_out(staged, held, fraction) if held is not None else set()
        plan = []
        for source in sorted(p for p in staged.rglob("*") if p.is_file()):
            relative = source.relative_to(staged)
            folder = held if held is not None and relative in moved else data
            plan.append((source, folder / relative))
        place_all(plan)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rejected = [f"{entries[i].where}: {found.problems[i]}" for i in sorted(found.problems)]
    return {
        "imported": len(entries) - len(rejected),
        "rejected": rejected,
        "held_out": len(moved),
        "rotated": found.rotated,
        "entries": len(entries),
    }


def _export_file(export: Path, folder: Path) -> tuple[Path, str]:
    """The export file to read (unpacked into ``folder`` from a zip) and how to name it."""
    shown = display(export)
    if export.suffix.lower() == ".zip":
        if export.stat().st_size > MAX_ZIP_BYTES:
            raise TangoError(f"{shown}: larger than {MAX_ZIP_BYTES >> 30} GiB")
        folder.mkdir()
        unpack_zip(export, folder)
        inner = archived_export(export, folder)
        export, shown = inner, f"{shown}/{inner.name}"
    if export.stat().st_size > MAX_EXPORT_BYTES:
        raise TangoError(f"{shown}: larger than {MAX_EXPORT_BYTES >> 20} MiB")
    return export, shown


def _stage_boxes(
    entries: list[Entry], root: Path, staged: Path, data: Path, labels: list[str]
) -> Staged:
    """Stage each entry as a YOLO image and label file. ``taken``: the stems of the training
    images and labels in the data and staged so far."""
    found = Staged()
    taken = _taken_stems(data)
    for index, entry in enumerate(entries):
        problem = entry.problem or entry.box_problem
        if problem is None:
            problem = _stage_one(entry, root, staged, labels, taken, found)
        if problem is not None:
            found.problems[index] = problem
    return found


def _stage_one(
    entry: Entry, root: Path, staged: Path, labels: list[str], taken: set[str], found: Staged
) -> str | None:
    got = image_source(entry, root)
    if isinstance(got, str):
        return got
    source, width, height = got
    if entry.size is not None and entry.size != (width, height):
        return (
            f"the export gives its size as {entry.size[0]}x{entry.size[1]}, "
            f"the image is {width}x{height}"
        )
    rows, rotated = [], 0
    for box in entry.boxes:
        label = box.labels[0]
        if label not in labels:
            return f"box label '{label[:40]}' is not one of {', '.join(labels)}"
        try:
            corners = upright_box(box, width, height)
        except ValueError as exc:
            return str(exc)
        rotated += is_rotated(box)
        rows.append(yolo_row(labels.index(label), corners))
    # YOLO pairs an image with labels/train/<stem>.txt: a second image of that stem (x.jpg
    # beside x.png, or a/y.png and b/y.png in one export) would take the other's labels
    if source.stem in taken:
        return (
            f"an image or labels named '{source.stem}' are already in the data "
            "(images/train, labels/train) or in this import"
        )
    taken.add(source.stem)
    found.rotated += rotated
    (staged / "images" / "train").mkdir(parents=True, exist_ok=True)
    (staged / "labels" / "train").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, staged / "images" / "train" / source.name)
    (staged / "labels" / "train" / f"{source.stem}.txt").write_text("".join(r + "\n" for r in rows))
    return None


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
