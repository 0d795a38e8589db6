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
import yaml
from PIL import Image

from tango_ci.data.layout import IMAGE_SUFFIXES, inside
from tango_ci.spec.problems import Problem

SPLITS = ("train", "val")
#: splits data.yaml may name besides the required ones; ``test`` is for the gate only
OPTIONAL_SPLITS = ("test",)


@dataclass(frozen=True)
class YoloDataset:
    root: Path  # folder the split paths are relative to
    data_yaml: Path
    names: tuple[str, ...]
    images: dict[str, tuple[Path, ...]]

    def label_path(self, image: Path) -> Path:
        return label_path(image)


def label_path(image: Path) -> Path:
    """ultralytics' rule: the last ``images`` folder of the path becomes ``labels``."""
    parts = list(image.parts)
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] == "images":
            parts[index] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _names(raw) -> tuple[str, ...] | None:
    if isinstance(raw, list) and all(isinstance(n, str) for n in raw):
        return tuple(raw)
    if isinstance(raw, dict) and sorted(raw) == list(range(len(raw))):
        return tuple(str(raw[i]) for i in range(len(raw)))
    return None


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
    try:
        content = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return None, [
            Problem(name, line, col, "", f"invalid YAML: {getattr(exc, 'problem', None) or exc}")
        ]
    if not isinstance(content, dict):
        return None, [Problem(name, 1, 1, "", "data.yaml must be a mapping")]
    problems = [
        Problem(name, 1, 1, "", f"missing required field '{key}'")
        for key in ("train", "val", "names")
        if key not in content
    ]
    if problems:
        return None, problems
    names = _names(content["names"])
    if names is None or not names:
        return None, [
            Problem(
                name,
                1,
                1,
                "names",
                "must be a list of class names, or a mapping 0: name, 1: name, ... without gaps",
            )
        ]
    root = inside(base / str(content.get("path", ".")), limit)
    if root is None:
        return None, [
            Problem(
                name,
                1,
                1,
                "path",
                f"'{str(content.get('path'))[:100]}' leads "
                "out of the repository; data must stay "
                "inside it",
            )
        ]
    images: dict[str, tuple[Path, ...]] = {}
    named = [s for s in OPTIONAL_SPLITS if content.get(s) not in (None, "", [])]
    for split in (*SPLITS, *named):
        folder = inside(root / str(content[split]), limit)
        if folder is None:
            problems.append(
                Problem(
                    name,
                    1,
                    1,
                    split,
                    f"'{str(content[split])[:100]}' leads "
                    "out of the repository; data must stay "
                    "inside it",
                )
            )
            continue
        if folder.is_file() and folder.suffix == ".txt":
            found = listed_images(folder)
            problems += [
                Problem(_display(p, base), 0, 0, "", f"listed in {content[split]} but missing")
                for p in found
                if not p.exists()
            ]
        elif not folder.is_dir():
            problems.append(Problem(name, 1, 1, split, f"folder '{content[split]}' does not exist"))
            continue
        else:
            found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        outside = [p for p in found if inside(p, limit) is None]
        problems += [
            Problem(
                _display(p, base),
                0,
                0,
                "",
                "a symbolic link out of the repository (or a link loop); data must stay inside it",
            )
            for p in outside
        ]
        images[split] = tuple(p for p in found if p not in outside and p.is_file())
        if not images[split]:
            problems.append(Problem(name, 1, 1, split, f"folder '{content[split]}' has no images"))
    if problems:
        return None, problems
    return YoloDataset(root=root, data_yaml=data_yaml, names=names, images=images), []


def listed_images(path: Path) -> list[Path]:
    """The images a list file names, one a line (ultralytics' other form of a split):
    relative lines are relative to the file's folder."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [path.parent / line.strip() for line in lines if line.strip()]


def parse_labels(path: Path, classes: int, display: str) -> tuple[np.ndarray, list[Problem]]:
    """Boxes of one label file as (N, 5) [class, cx, cy, w, h]; problems per line."""
    rows, problems = [], []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return np.zeros((0, 5), np.float32), [Problem(display, 1, 1, "", "not UTF-8 text")]
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 5:
            problems.append(
                Problem(
                    display,
                    number,
                    1,
                    "",
                    f"expected 5 values (class cx cy w h), got {len(fields)}",
                )
            )
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            bad = next(v for v in fields if not _is_number(v))
            problems.append(
                Problem(display, number, line.index(bad) + 1, "", f"'{bad}' is not a number")
            )
            continue
        cls, cx, cy, w, h = values
        if cls != int(cls) or not 0 <= cls < classes:
            problems.append(
                Problem(
                    display,
                    number,
                    1,
                    "",
                    f"class {fields[0]} is not a class id of data.yaml (0..{classes - 1})",
                )
            )
            continue
        for label, value, column in (("cx", cx, 1), ("cy", cy, 2), ("w", w, 3), ("h", h, 4)):
            if not 0 <= value <= 1:
                col = line.index(fields[column]) + 1
                problems.append(
                    Problem(
                        display,
                        number,
                        col,
                        "",
                        f"{label} {fields[column]} is outside 0..1 (coordinates are normalised)",
                    )
                )
                break
        else:
            if w <= 0 or h <= 0:
                problems.append(Problem(display, number, 1, "", "box has zero width or height"))
            elif cx - w / 2 < -0.01 or cx + w / 2 > 1.01 or cy - h / 2 < -0.01 or cy + h / 2 > 1.01:
                problems.append(Problem(display, number, 1, "", "box reaches outside the image"))
            else:
                rows.append(values)
    return np.asarray(rows, np.float32).reshape(-1, 5), problems


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
    for split, images in dataset.images.items():
        boxes = 0
        for image in images:
            shown = _display(image, base)
            fingerprint.update(f"{shown}\0{_sha(image)}\n".encode())
            try:
                with Image.open(image) as handle:
                    handle.verify()
            # any failure means unreadable: once ultralytics is imported, a failed open also
            # tries optional decoders and may raise ImportError instead of PIL's error
            except Exception:
                problems.append(Problem(shown, 0, 0, "", "image cannot be read (empty or corrupt)"))
                continue
            labels = label_path(image)
            if labels.is_symlink() and inside(labels, limit) is None:
                problems.append(
                    Problem(
                        _display(labels, base),
                        0,
                        0,
                        "",
                        "a symbolic link out "
                        "of the repository (or a link loop); data must stay "
                        "inside it",
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
                        f"no label file "
                        f"{_display(labels, base)} (write an empty one for an "
                        "image without objects)",
                    )
                )
                continue
            fingerprint.update(f"{_display(labels, base)}\0{_sha(labels)}\n".encode())
            rows, found = parse_labels(labels, len(dataset.names), _display(labels, base))
            problems += found
            boxes += len(rows)
            stats["background_images"] += int(len(rows) == 0 and not found)
            for cls in rows[:, 0].astype(int):
                stats["per_class"][dataset.names[cls]] += 1
        stats["images"][split] = len(images)
        stats["boxes"][split] = boxes
    stats["fingerprint"] = fingerprint.hexdigest()
    return dataset, stats, sorted(problems, key=lambda p: (p.file, p.line))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping the aspect ratio and pad to ``size`` (grey 114, as ultralytics does);
    the deployment runtime's code."""
    from tango_ci.runtime.images import letterbox as runtime_letterbox

    return runtime_letterbox(image, size)


def load_split(dataset: YoloDataset, split: str, size: int) -> dict:
    """Letterboxed images (uint8 NHWC) and their boxes in pixels of the letterboxed image."""
    images, boxes = [], []
    for path in dataset.images[split]:
        with Image.open(path) as handle:
            pixels = np.asarray(handle.convert("RGB"))
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
