"""YOLO datasets (ultralytics layout): read data.yaml, check every label line, load splits.

Problems are reported as ``file:line:col: message`` with paths relative to the dataset folder,
like spec problems, so a broken label is found as easily as a broken project file. At most
:data:`MAX_PROBLEMS` are kept (a caller may ask for fewer), then one line with the total: a
million bad label lines must not flood the terminal or the memory.

What ultralytics accepts and mends when it trains is accepted and mended the same way, so the
checked statistics and the saved ground truth are what training sees, each counted and warned
of: identical lines of a label file are one box, boxes reaching past the image's edge are cut
at it, boxes of no area are dropped, an image without a label file has no objects, and a
``test:`` entry that does not exist (as Roboflow writes it) leaves the test split to be drawn
from the training images.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tango_ci.data.dataset import duplicates
from tango_ci.data.files import FileRefused, sha256
from tango_ci.data.images import check_image, read_image
from tango_ci.data.layout import inside
from tango_ci.data.problem_list import MAX_PROBLEMS, ProblemList
from tango_ci.data.yolo_labels import label_path, parse_labels, read_label_file, read_labels
from tango_ci.data.yolo_splits import STAY, listed_images, relative_name, split_images, under
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
]


@dataclass(frozen=True)
class YoloDataset:
    root: Path  # folder the split paths are relative to
    data_yaml: Path
    names: tuple[str, ...]
    images: dict[str, tuple[Path, ...]]
    keypoints: tuple[int, int] | None = None  # data.yaml's kpt_shape: pose rows are boxes too
    warnings: tuple[str, ...] = ()  # what was read differently from what data.yaml says

    def label_path(self, image: Path) -> Path:
        return label_path(image)


MIN_SIDE = 10  # ultralytics leaves out a smaller image (check_image: "<10 pixels")
_LINKED_OUT = f"a symbolic link out of the repository (or a link loop); {STAY}"


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
        return None, [at("path", f"{quoted(fields.path)} leads out of the repository; {STAY}")]
    shown_base = base.resolve()  # image paths are resolved ones
    found_problems = ProblemList(limit=max_problems)
    found_problems.add(problems)
    images: dict[str, tuple[Path, ...]] = {}
    warnings = list(fields.warnings)
    undecoded: list[Path] = []
    for split, entries in fields.splits.items():
        found, unread, missing = split_images(
            root, entries, limit, shown_base, lambda m, k=split: at(k, m), undecoded
        )
        if split == "test" and not unread and not any(p.is_file() for p in found):
            # Roboflow writes test: without a test folder; ultralytics trains all the same
            why = f"{quoted(missing[0])} does not exist" if missing else "has no images"
            where = fields.where("test")
            warnings.append(
                f"{name}:{where.line}:{where.col}: test: {why}; the test split is drawn from "
                "the training images instead (data.split.test)"
            )
            continue
        unread.extend(
            at(split, f"folder {quoted(value)} does not exist{under(root, shown_base)}")
            for value in missing
        )
        found_problems.add(unread)
        outside = {p for p in found if inside(p, limit) is None}
        found_problems.add(
            Problem(relative_name(p, shown_base), 0, 0, "", _LINKED_OUT)
            for p in found
            if p in outside
        )
        images[split] = tuple(
            p for p in found if p not in outside and (p.is_file() or p.is_symlink())
        )
        if not images[split] and not unread and not missing:
            shown = f"folder {quoted(entries[0])}" if len(entries) == 1 else quoted(list(entries))
            found_problems.add([at(split, f"{shown} has no images")])
    if found_problems.total:
        return None, found_problems.result(name)
    if undecoded:
        kinds = " ".join(sorted({p.suffix.lower() for p in undecoded}))
        warnings.append(
            f"{len(undecoded)} image(s) of types ultralytics reads but this data stage does not "
            f"decode ({kinds}) left out; first: {relative_name(undecoded[0], shown_base)}; "
            "convert them to PNG or JPEG to use them"
        )
    return (
        YoloDataset(
            root=root,
            data_yaml=data_yaml,
            names=fields.names,
            images=images,
            keypoints=fields.keypoints,
            warnings=tuple(warnings),
        ),
        [],
    )


def check_dataset(
    path: Path,
    limit: Path | None = None,
    *,
    max_problems: int = MAX_PROBLEMS,
    max_bad_fraction: float = 0.0,
) -> tuple[YoloDataset | None, dict, list[Problem]]:
    """Every problem of a YOLO dataset (the first ``max_problems`` by file and line, then one
    saying how many in all); statistics and a fingerprint when it can be read. Unreadable
    images are left out of the dataset given back, with a warning, while they are at most
    ``max_bad_fraction`` of the images (ultralytics leaves out any number); past it each is a
    problem."""
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
    }
    hashed: list[dict] = []  # for images identical across splits
    bad: dict[Path, Problem] = {}  # images that cannot be used
    mended = {key: _Mended() for key in _MENDED}  # boxes read differently, as ultralytics does
    missing: list[str] = []  # images without a label file
    for split, images in dataset.images.items():
        boxes = 0
        for image in images:
            shown = relative_name(image, base)
            problem = _image_problem(image, shown)
            if problem is not None:
                fingerprint.update(f"{shown}\0unreadable\n".encode())
                bad[image] = problem
                continue
            digest = sha256(image)
            hashed.append({"path": shown, "sha256": digest, "split": split})
            fingerprint.update(f"{shown}\0{digest}\n".encode())
            labels = label_path(image)
            label_shown = relative_name(labels, base)
            if labels.is_symlink() and inside(labels, limit) is None:
                problems.add([Problem(label_shown, 0, 0, "", _LINKED_OUT)])
                continue
            if not labels.exists():  # ultralytics trains on it as an image without objects
                missing.append(label_shown)
                stats["background_images"] += 1
                continue
            raw, found = read_label_file(labels, label_shown)
            if raw is not None:
                fingerprint.update(f"{label_shown}\0{hashlib.sha256(raw).hexdigest()}\n".encode())
                read = read_labels(raw, len(dataset.names), label_shown, dataset.keypoints)
                found = read.problems
            problems.add(found)
            if raw is None or found:
                continue
            for key, tally in mended.items():
                if getattr(read, key):
                    tally.count += getattr(read, key)
                    tally.files += 1
                    tally.first = tally.first or label_shown
            boxes += len(read.rows)
            stats["background_images"] += int(len(read.rows) == 0)
            for cls in read.rows[:, 0].astype(int):
                stats["per_class"][dataset.names[cls]] += 1
        stats["images"][split] = len(images) - sum(p in bad for p in images)
        stats["boxes"][split] = boxes
    total = sum(map(len, dataset.images.values()))
    if len(bad) > max_bad_fraction * total:  # ultralytics leaves out any; the project says
        problems.add(bad.values())
    elif bad:
        kept = {s: tuple(p for p in found if p not in bad) for s, found in dataset.images.items()}
        dataset = dataclasses.replace(dataset, images=kept)
        problems.add(
            Problem(relative_name(dataset.data_yaml, base), 0, 0, "", f"{s}: no usable image")
            for s, found in kept.items()
            if not found
        )
    stats["unreadable_images"] = len(bad)
    stats["fingerprint"] = fingerprint.hexdigest()
    stats["duplicate_boxes"] = mended["duplicates"].count
    stats["clipped_boxes"] = mended["clipped"].count
    stats["empty_boxes"] = mended["degenerate"].count
    stats["unlabelled_images"] = len(missing)
    stats["warnings"] = [*dataset.warnings, *duplicates(hashed)]
    for key, what in _MENDED.items():
        if mended[key].count:
            stats["warnings"].append(
                f"{mended[key].count} {what}, in {mended[key].files} file(s); first: "
                f"{mended[key].first}"
            )
    if bad:
        stats["warnings"].append(
            f"{len(bad)} of {total} image(s) left out, unreadable or under {MIN_SIDE} pixels a side "
            f"(within data.max_bad_fraction {max_bad_fraction:g}); first: "
            f"{next(iter(bad.values())).format()}"
        )
    if missing:
        stats["warnings"].append(
            f"{len(missing)} image(s) without a label file, taken as images without objects "
            f"(as ultralytics takes them); first: {missing[0]}"
        )
    return dataset, stats, problems.result(relative_name(dataset.data_yaml, base))


_MENDED = {
    "duplicates": "duplicate box(es) removed, identical lines of a label file (ultralytics "
    "removes them too)",
    "clipped": "box(es) reaching past the image's edge cut at it (as ultralytics cuts them)",
    "degenerate": "box(es) of no width or height dropped (ultralytics drops them when it trains)",
}


@dataclass
class _Mended:
    count: int = 0
    files: int = 0
    first: str = ""


def _image_problem(image: Path, shown: str) -> Problem | None:
    """Why ``image`` cannot be used, decoded in full (a truncated file fails here); or None."""
    try:
        width, height = check_image(image)
    except FileRefused as exc:
        return Problem(shown, 0, 0, "", f"image file refused: {exc.message}")
    except ImageTooLarge as exc:
        return Problem(shown, 0, 0, "", f"image refused: {exc}")
    except Exception:  # any other failure means unreadable
        return Problem(shown, 0, 0, "", "image cannot be read (empty or corrupt)")
    if min(width, height) < MIN_SIDE:
        return Problem(
            shown,
            0,
            0,
            "",
            f"image of {width}x{height} pixels: ultralytics leaves out images under "
            f"{MIN_SIDE} pixels a side",
        )
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
        rows = parse_labels(label_path(path), len(dataset.names), "", dataset.keypoints)[0]
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
