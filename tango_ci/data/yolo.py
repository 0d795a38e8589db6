"""YOLO datasets (ultralytics layout): read data.yaml, check every label line, load splits.

Problems are reported as ``file:line:col: message`` with paths relative to the dataset folder,
like spec problems, so a broken label is found as easily as a broken project file. At most
:data:`MAX_PROBLEMS` are kept (a caller may ask for fewer), then one line with the total: a
million bad label lines must not flood the terminal or the memory.

Identical lines of a label file are one box: ultralytics removes them when it trains and
validates, so the checked statistics and the saved ground truth leave them out too (counted and
warned of).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tango_ci.data.dataset import duplicates
from tango_ci.data.files import FileRefused, decode_text, read_bytes, sha256, undecodable_line
from tango_ci.data.images import check_image, read_image
from tango_ci.data.layout import IMAGE_SUFFIXES, inside
from tango_ci.data.yolo_labels import (
    label_path,
    parse_label_bytes,
    parse_labels,
    read_label_file,
)
from tango_ci.data.yolo_yaml import load_data_yaml, quoted
from tango_ci.exceptions import TangoError
from tango_ci.runtime.images import ImageTooLarge
from tango_ci.spec.problems import Problem

__all__ = [
    "MAX_PROBLEMS",
    "ProblemList",
    "YoloDataset",
    "check_dataset",
    "label_path",
    "letterbox",
    "listed_images",
    "load_split",
    "parse_labels",
    "read_dataset",
    "relative_name",
    "unique_boxes",
]

MAX_PROBLEMS = 1000


@dataclass(frozen=True)
class YoloDataset:
    root: Path  # folder the split paths are relative to
    data_yaml: Path
    names: tuple[str, ...]
    images: dict[str, tuple[Path, ...]]

    def label_path(self, image: Path) -> Path:
        return label_path(image)


_STAY = "data must stay inside it"
_LINKED_OUT = f"a symbolic link out of the repository (or a link loop); {_STAY}"


def relative_name(path: Path, base: Path) -> str:
    """``path`` relative to the folder ``base``, with ``..`` for a file beside it (a split
    folder outside the dataset's ``path:`` but inside the repository)."""
    try:
        return Path(os.path.relpath(path, base)).as_posix()
    except ValueError:  # another drive
        return str(path)


def _file_and_line(problem: Problem) -> tuple[str, int]:
    return problem.file, problem.line


@dataclass
class ProblemList:
    """The first ``limit`` problems (in the order found, or by file and line when ``ordered``)
    and how many there were in all, in memory that does not grow with their number."""

    ordered: bool = False
    limit: int = MAX_PROBLEMS
    kept: list[Problem] = field(default_factory=list)
    total: int = 0

    def add(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            self.total += 1
            if self.ordered or len(self.kept) < self.limit:
                self.kept.append(problem)
            if len(self.kept) > 2 * self.limit:  # sorting is stable: ties keep their order
                self.kept = sorted(self.kept, key=_file_and_line)[: self.limit]

    def result(self, where: str) -> list[Problem]:
        """The kept problems and a last one at ``where`` saying how many more there were."""
        found = sorted(self.kept, key=_file_and_line) if self.ordered else self.kept
        found = found[: self.limit]
        if self.total > len(found):
            more = self.total - len(found)
            found = [
                *found,
                Problem(where, 0, 0, "", f"... and {more} more problem(s), {self.total} in all"),
            ]
        return found


def read_dataset(
    path: Path, limit: Path | None = None, *, max_problems: int = MAX_PROBLEMS
) -> tuple[YoloDataset | None, list[Problem]]:
    """Parse data.yaml and list the split images; problems instead of exceptions (the first
    ``max_problems``, then one saying how many in all).

    With ``limit`` (the repository), ``path:`` and every split folder and image must stay
    inside it, through any symbolic link.
    """
    data_yaml = path / "data.yaml" if path.is_dir() else path
    base = data_yaml.parent
    name = relative_name(data_yaml, base)
    if not data_yaml.is_file():
        return None, [Problem(str(data_yaml), 0, 0, "", "no data.yaml found")]
    fields, problems = load_data_yaml(data_yaml, name)
    if fields is None:
        return None, problems

    def at(key: str, message: str) -> Problem:
        where = fields.where(key)
        return Problem(name, where.line, where.col, key, message)

    root = inside(base / fields.path, limit)
    if root is None:
        return None, [at("path", f"{quoted(fields.path)} leads out of the repository; {_STAY}")]
    shown_base = base.resolve()  # image paths are resolved ones
    found_problems = ProblemList(limit=max_problems)
    found_problems.add(problems)
    images: dict[str, tuple[Path, ...]] = {}
    for split, value in fields.splits.items():
        folder = _split_folder(root, value, limit)
        if folder is None:
            found_problems.add([at(split, f"{quoted(value)} leads out of the repository; {_STAY}")])
            continue
        kind = _kind(folder)
        if kind == "file" and folder.suffix == ".txt":
            found, listing = _listed(folder, shown_base)
            if listing:
                found_problems.add(listing)
                continue
            found_problems.add(
                Problem(
                    relative_name(p, shown_base), 0, 0, "", f"listed in {quoted(value)} but missing"
                )
                for p in found
                if not p.exists()
            )
        elif kind != "folder":
            found_problems.add([at(split, f"folder {quoted(value)} does not exist")])
            continue
        else:
            found = _images(folder)
        outside = {p for p in found if inside(p, limit) is None}
        found_problems.add(
            Problem(relative_name(p, shown_base), 0, 0, "", _LINKED_OUT)
            for p in found
            if p in outside
        )
        images[split] = tuple(p for p in found if p not in outside and p.is_file())
        if not images[split]:
            found_problems.add([at(split, f"folder {quoted(value)} has no images")])
    if found_problems.total:
        return None, found_problems.result(name)
    return YoloDataset(root=root, data_yaml=data_yaml, names=fields.names, images=images), []


def _split_folder(root: Path, value: str, limit: Path | None) -> Path | None:
    """Where a split entry leads (None: out of ``limit``). Roboflow's YOLO export writes
    ``train: ../train/images`` beside its data.yaml; like ultralytics, an entry starting with
    ``../`` that does not exist is tried again without it."""
    folder = inside(root / value, limit)
    if (folder is None or _kind(folder) is None) and value.startswith("../"):
        retried = inside(root / value[3:], limit)
        if retried is not None and _kind(retried) is not None:
            return retried
    return folder


def _images(folder: Path) -> list[Path]:
    """Images under ``folder`` by suffix, sorted; hidden files and folders (``._name``
    AppleDouble files, ``.git``) left out."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _kind(path: Path) -> str | None:
    """ "file", "folder" or None (missing, or a name the system refuses, such as one too long)."""
    try:
        return "file" if path.is_file() else "folder" if path.is_dir() else None
    except OSError:
        return None


def listed_images(path: Path) -> list[Path]:
    """The images a list file names, one a line (ultralytics' other form of a split):
    relative lines are relative to the file's folder. Raises :class:`FileRefused` for a list
    that is not a regular file or too large, ``UnicodeDecodeError`` for one not UTF-8."""
    lines = decode_text(read_bytes(path)).splitlines()
    return [path.parent / line.strip() for line in lines if line.strip()]


def _listed(path: Path, base: Path) -> tuple[list[Path], list[Problem]]:
    """:func:`listed_images`, or the problem of the list file."""
    shown = relative_name(path, base)
    try:
        return listed_images(path), []
    except FileRefused as exc:
        return [], [Problem(shown, 0, 0, "", f"list file refused: {exc.message}")]
    except UnicodeDecodeError as exc:
        line, col = undecodable_line(exc)
        return [], [Problem(shown, line, col, "", "not UTF-8 text")]


def check_dataset(
    path: Path, limit: Path | None = None, *, max_problems: int = MAX_PROBLEMS
) -> tuple[YoloDataset | None, dict, list[Problem]]:
    """Every problem of a YOLO dataset (the first ``max_problems`` by file and line, then one
    saying how many in all); statistics and a fingerprint when it can be read."""
    dataset, unread = read_dataset(path, limit, max_problems=max_problems)
    if dataset is None:
        return None, {}, unread
    base = dataset.data_yaml.parent.resolve()  # image paths are resolved ones
    problems = ProblemList(ordered=True, limit=max_problems)
    fingerprint = hashlib.sha256()
    stats: dict[str, Any] = {
        "images": {},
        "boxes": {},
        "per_class": {n: 0 for n in dataset.names},
        "background_images": 0,
        "duplicate_boxes": 0,
    }
    hashed: list[dict] = []  # for images identical across splits
    repeated: list[str] = []  # label files with identical lines
    for split, images in dataset.images.items():
        boxes = 0
        for image in images:
            shown = relative_name(image, base)
            problem = _image_problem(image, shown)
            if problem is not None:
                fingerprint.update(f"{shown}\0unreadable\n".encode())
                problems.add([problem])
                continue
            digest = sha256(image)
            hashed.append({"path": shown, "sha256": digest, "split": split})
            fingerprint.update(f"{shown}\0{digest}\n".encode())
            labels = label_path(image)
            label_shown = relative_name(labels, base)
            if labels.is_symlink() and inside(labels, limit) is None:
                problems.add([Problem(label_shown, 0, 0, "", _LINKED_OUT)])
                continue
            if not labels.exists():
                problems.add(
                    [
                        Problem(
                            shown,
                            0,
                            0,
                            "",
                            f"no label file {label_shown} (write an empty one for an image "
                            "without objects)",
                        )
                    ]
                )
                continue
            raw, found = read_label_file(labels, label_shown)
            if raw is not None:
                fingerprint.update(f"{label_shown}\0{hashlib.sha256(raw).hexdigest()}\n".encode())
                rows, found = parse_label_bytes(raw, len(dataset.names), label_shown)
            problems.add(found)
            if raw is None or found:
                continue
            kept = unique_boxes(rows)
            if len(kept) < len(rows):
                stats["duplicate_boxes"] += len(rows) - len(kept)
                repeated.append(label_shown)
            boxes += len(kept)
            stats["background_images"] += int(len(kept) == 0)
            for cls in kept[:, 0].astype(int):
                stats["per_class"][dataset.names[cls]] += 1
        stats["images"][split] = len(images)
        stats["boxes"][split] = boxes
    stats["fingerprint"] = fingerprint.hexdigest()
    stats["warnings"] = duplicates(hashed)
    if repeated:
        stats["warnings"].append(
            f"{stats['duplicate_boxes']} duplicate box(es) removed, identical lines of a label "
            f"file (ultralytics removes them too), in {len(repeated)} file(s); first: "
            f"{repeated[0]}"
        )
    return dataset, stats, problems.result(relative_name(dataset.data_yaml, base))


def unique_boxes(rows: np.ndarray) -> np.ndarray:
    """``rows`` without exact repeats, in their order: ultralytics' rule (``np.unique`` of the
    float32 rows), which it applies to training and validation labels alike."""
    if len(rows) < 2:
        return rows
    _, first = np.unique(rows, axis=0, return_index=True)
    return rows[np.sort(first)]


def _image_problem(image: Path, shown: str) -> Problem | None:
    """Why ``image`` cannot be used, decoded in full (a truncated file fails here); or None."""
    try:
        check_image(image)
    except FileRefused as exc:
        return Problem(shown, 0, 0, "", f"image file refused: {exc.message}")
    except ImageTooLarge as exc:
        return Problem(shown, 0, 0, "", f"image refused: {exc}")
    except Exception:  # any other failure means unreadable
        return Problem(shown, 0, 0, "", "image cannot be read (empty or corrupt)")
    return None


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping the aspect ratio and pad to ``size`` (grey 114, as ultralytics does);
    the deployment runtime's code."""
    from tango_ci.runtime.images import letterbox as runtime_letterbox

    return runtime_letterbox(image, size)


def load_split(dataset: YoloDataset, split: str, size: int) -> dict:
    """Letterboxed images (uint8 NHWC) and their boxes in pixels of the letterboxed image."""
    images, boxes = [], []
    for path in dataset.images[split]:
        try:
            pixels = read_image(path)
        except Exception as exc:  # check_dataset decoded every image: this is a changed file
            raise TangoError(
                f"{path}: image cannot be read ({type(exc).__name__}: {exc})"
            ) from None
        boxed, scale, (left, top) = letterbox(pixels, size)
        rows = unique_boxes(parse_labels(label_path(path), len(dataset.names), "")[0])
        h, w = pixels.shape[:2]
        xyxy = (
            np.stack(
                [
                    (rows[:, 1] - rows[:, 3] / 2) * w,
                    (rows[:, 2] - rows[:, 4] / 2) * h,
                    (rows[:, 1] + rows[:, 3] / 2) * w,
                    (rows[:, 2] + rows[:, 4] / 2) * h,
                ],
                1,
            )
            * scale
            + np.array([left, top, left, top])
            if len(rows)
            else np.zeros((0, 4), np.float32)
        )
        images.append(boxed)
        boxes.append(np.concatenate([rows[:, :1], xyxy], 1).astype(np.float32))
    return {
        "images": np.stack(images),
        "boxes": boxes,
        "files": [relative_name(p, dataset.root) for p in dataset.images[split]],
    }
