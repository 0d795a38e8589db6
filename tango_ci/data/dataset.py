"""The data stage for ImageFolder datasets: split, read every image, fingerprint, save arrays.

Images are decoded once here and saved as uint8 arrays (``train.npz``, ``val.npz``) in the run
folder, so later stages (on other machines, too) use exactly the same pixels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tango_ci.data.layout import class_folders, confined, has_split_folders, is_image
from tango_ci.exceptions import TangoError

MEAN = 0.5
STD = 0.5


class TooManyBadImages(TangoError):
    _template = (
        "{bad} of {total} images cannot be read ({fraction:.1%} > the allowed "
        "{limit:.1%} of data.max_bad_fraction); first: {first}"
    )


@dataclass(frozen=True)
class Item:
    path: Path
    label: int
    split: str


def scan_imagefolder(
    root: Path, val_fraction: float, seed: int, limit: Path | None = None
) -> tuple[list[str], list[Item]]:
    """Classes and items; one folder is split per class by a seeded ratio.

    With ``limit``, every folder and image must stay inside it through any symbolic link.
    """
    confined(root, limit)
    if has_split_folders(root):
        for split in ("train", "val"):
            confined(root / split, limit)
        classes = [d.name for d in class_folders(root / "train")]
        items: list[Item] = [
            Item(confined(p, limit), label, split)
            for split in ("train", "val")
            for label, name in enumerate(classes)
            for p in _images(root / split / name, limit)
        ]
        return classes, items
    classes = [d.name for d in class_folders(root)]
    rng = np.random.default_rng(seed)
    items = []
    for label, name in enumerate(classes):
        files = [confined(p, limit) for p in _images(root / name, limit)]
        order = rng.permutation(len(files))
        n_val = max(1, round(len(files) * val_fraction))
        val = set(order[:n_val].tolist())
        items += [Item(f, label, "val" if i in val else "train") for i, f in enumerate(files)]
    return classes, items


def _images(folder: Path, limit: Path | None) -> list[Path]:
    """The images of a class folder, sorted; links that lead out or loop are refused."""
    confined(folder, limit)
    entries = sorted(folder.iterdir())
    for entry in entries:
        if entry.is_symlink():
            confined(entry, limit)
    return [entry for entry in entries if is_image(entry)]


def decode(path: Path, size: int) -> np.ndarray:
    """An image as uint8 HWC RGB at ``size`` x ``size``."""
    with Image.open(path) as image:
        image.load()
        rgb = image.convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW, the network input for every engine."""
    x = images.astype(np.float32) / 255.0
    return np.ascontiguousarray(((x - MEAN) / STD).transpose(0, 3, 1, 2))


def load_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(folder / f"{split}.npz") as data:
        return data["images"], data["labels"]


def build_arrays(
    root: Path,
    *,
    image_size: int,
    val_fraction: float,
    seed: int,
    max_bad_fraction: float,
    limit: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Read every image; returns classes, arrays per split, bad files and the fingerprint.

    ``limit`` (the repository) is the folder no image may lead out of.
    """
    classes, items = scan_imagefolder(root, val_fraction, seed, limit)
    if len(classes) < 2:
        raise TangoError(f"{root}: need at least two classes with images, found {len(classes)}")
    arrays: dict[str, list] = {"train": [], "val": []}
    labels: dict[str, list] = {"train": [], "val": []}
    bad: list[dict] = []
    fingerprint = hashlib.sha256()
    files: list[dict] = []
    for index, item in enumerate(items, 1):
        relative = item.path.relative_to(root).as_posix()
        raw = item.path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        fingerprint.update(f"{relative}\0{digest}\n".encode())
        try:
            arrays[item.split].append(decode(item.path, image_size))
            labels[item.split].append(item.label)
            files.append(
                {"path": relative, "sha256": digest, "label": item.label, "split": item.split}
            )
        except Exception as exc:
            bad.append({"path": relative, "reason": f"{type(exc).__name__}: {exc}"[:200]})
        if progress:
            progress(index, len(items))
    total = len(items)
    if total and len(bad) / total > max_bad_fraction:
        raise TooManyBadImages(
            bad=len(bad),
            total=total,
            fraction=len(bad) / total,
            limit=max_bad_fraction,
            first=bad[0]["path"],
        )
    for split in ("train", "val"):
        if not arrays[split]:
            raise TangoError(f"{root}: the {split} split has no readable images")
    return {
        "classes": classes,
        "arrays": {s: (np.stack(arrays[s]), np.asarray(labels[s], dtype=np.int64)) for s in arrays},
        "bad": bad,
        "files": files,
        "fingerprint": fingerprint.hexdigest(),
    }
