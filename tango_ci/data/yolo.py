"""YOLO datasets (ultralytics layout): read data.yaml, check every label line, load splits.

Problems are reported as ``file:line:col: message`` with paths relative to the dataset folder,
like spec problems, so a broken label is found as easily as a broken project file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
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
    "YoloDataset",
    "check_dataset",
    "label_path",
    "letterbox",
    "listed_images",
    "load_split",
    "parse_labels",
    "read_dataset",
]


@dataclass(frozen=True)
class YoloDataset:
    root: Path  # folder the split paths are relative to
    data_yaml: Path
    names: tuple[str, ...]
    images: dict[str, tuple[Path, ...]]

    def label_path(self, image: Path) -> Path:
        return label_path(image)


_STAY = "data must stay inside it"


def _display(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def read_dataset(path: Path, limit: Path | None = None) -> tuple[YoloDataset | None, list[Problem]]:
    """Parse data.yaml and list the split images; problems instead of exceptions.

    With ``limit`` (the repository), ``path:`` and every split folder and image must stay
    inside it, through any symbolic link.
    """
    data_yaml = path / "data.yaml" if path.is_dir() else path
    base = data_yaml.parent
    name = _display(data_yaml, base)
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
    images: dict[str, tuple[Path, ...]] = {}
    for split, value in fields.splits.items():
        folder = inside(root / value, limit)
        if folder is None:
            problems.append(at(split, f"{quoted(value)} leads out of the repository; {_STAY}"))
            continue
        kind = _kind(folder)
        if kind == "file" and folder.suffix == ".txt":
            found, listing = _listed(folder, base)
            if listing:
                problems += listing
                continue
            problems += [
                Problem(_display(p, base), 0, 0, "", f"listed in {quoted(value)} but missing")
                for p in found
                if not p.exists()
            ]
        elif kind != "folder":
            problems.append(at(split, f"folder {quoted(value)} does not exist"))
            continue
        else:
            found = _images(folder)
        outside = [p for p in found if inside(p, limit) is None]
        problems += [
            Problem(
                _display(p, base),
                0,
                0,
                "",
                f"a symbolic link out of the repository (or a link loop); {_STAY}",
            )
            for p in outside
        ]
        images[split] = tuple(p for p in found if p not in outside and p.is_file())
        if not images[split]:
            problems.append(at(split, f"folder {quoted(value)} has no images"))
    if problems:
        return None, problems
    return YoloDataset(root=root, data_yaml=data_yaml, names=fields.names, images=images), []


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
    shown = _display(path, base)
    try:
        return listed_images(path), []
    except FileRefused as exc:
        return [], [Problem(shown, 0, 0, "", f"list file refused: {exc.message}")]
    except UnicodeDecodeError as exc:
        line, col = undecodable_line(exc)
        return [], [Problem(shown, line, col, "", "not UTF-8 text")]


def check_dataset(
    path: Path, limit: Path | None = None
) -> tuple[YoloDataset | None, dict, list[Problem]]:
    """Every problem of a YOLO dataset; statistics and a fingerprint when it can be read."""
    dataset, problems = read_dataset(path, limit)
    if dataset is None:
        return None, {}, problems
    base = dataset.data_yaml.parent.resolve()  # image paths are resolved ones
    fingerprint = hashlib.sha256()
    stats: dict[str, Any] = {
        "images": {},
        "boxes": {},
        "per_class": {n: 0 for n in dataset.names},
        "background_images": 0,
    }
    hashed: list[dict] = []  # for images identical across splits
    for split, images in dataset.images.items():
        boxes = 0
        for image in images:
            shown = _display(image, base)
            problem = _image_problem(image, shown)
            if problem is not None:
                fingerprint.update(f"{shown}\0unreadable\n".encode())
                problems.append(problem)
                continue
            digest = sha256(image)
            hashed.append({"path": shown, "sha256": digest, "split": split})
            fingerprint.update(f"{shown}\0{digest}\n".encode())
            labels = label_path(image)
            label_shown = _display(labels, base)
            if labels.is_symlink() and inside(labels, limit) is None:
                problems.append(
                    Problem(
                        label_shown,
                        0,
                        0,
                        "",
                        f"a symbolic link out of the repository (or a link loop); {_STAY}",
                    )
                )
                continue
            if not labels.exists():
                problems.append(
                    Problem(
                        shown,
                        0,
                        0,
                        "",
                        f"no label file {label_shown} (write an empty one for an image without "
                        "objects)",
                    )
                )
                continue
            raw, found = read_label_file(labels, label_shown)
            if raw is not None:
                fingerprint.update(f"{label_shown}\0{hashlib.sha256(raw).hexdigest()}\n".encode())
                rows, found = parse_label_bytes(raw, len(dataset.names), label_shown)
            problems += found
            if raw is None or found:
                continue
            boxes += len(rows)
            stats["background_images"] += int(len(rows) == 0)
            for cls in rows[:, 0].astype(int):
                stats["per_class"][dataset.names[cls]] += 1
        stats["images"][split] = len(images)
        stats["boxes"][split] = boxes
    stats["fingerprint"] = fingerprint.hexdigest()
    stats["warnings"] = duplicates(hashed)
    return dataset, stats, sorted(problems, key=lambda p: (p.file, p.line))


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
        rows, _ = parse_labels(label_path(path), len(dataset.names), "")
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
        "files": [str(p.relative_to(dataset.root)) for p in dataset.images[split]],
    }
