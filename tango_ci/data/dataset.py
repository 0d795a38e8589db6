"""The data stage for ImageFolder datasets: split, read every image, fingerprint, save arrays.

Images are decoded once here and saved as uint8 arrays (``train.npz``, ``val.npz`` and
``test.npz``) in the run folder, so later stages (on other machines, too) use exactly the same
pixels. The test split is only for the gate and the report: search and training never read it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tango_ci.data.files import MAX_IMAGE_BYTES, FileRefused, regular_size, sha256
from tango_ci.data.images import read_image
from tango_ci.data.layout import (
    class_folders,
    confined,
    has_split_folders,
    image_name,
    is_image,
    not_utf8,
    unread_folders,
)
from tango_ci.exceptions import TangoError
from tango_ci.printable import printable

SPLITS = ("train", "val", "test")
MEAN = 0.5
STD = 0.5


class TooManyBadImages(TangoError):
    """More unreadable images than data.max_bad_fraction allows; ``bad`` lists them all (the
    data stage logs each before it stops)."""

    _template = (
        "{bad} of {total} images cannot be read ({fraction:.1%} > the allowed "
        "{limit:.1%} of data.max_bad_fraction); first: {first}"
    )

    def __init__(self, bad_files: list[dict], total: int, limit: float) -> None:
        first = "; ".join(f"{b['path']} ({b['reason']})" for b in bad_files[:3])
        more = len(bad_files) - 3
        super().__init__(
            bad=len(bad_files),
            total=total,
            fraction=len(bad_files) / total,
            limit=limit,
            first=first + (f"; and {more} more, listed above" if more > 0 else ""),
        )
        self.bad_files = bad_files


@dataclass(frozen=True)
class Item:
    path: Path
    label: int
    split: str


def scan_imagefolder(
    root: Path,
    val_fraction: float,
    seed: int,
    limit: Path | None = None,
    *,
    test_fraction: float = 0.0,
) -> tuple[list[str], list[Item]]:
    """Classes and items. Given ``train/`` and ``val/`` folders (and ``test/``, used as it is),
    the test split is otherwise drawn per class from the training images; one folder is split
    per class by seeded ratios, validation first and the test split from what remains.

    With ``limit``, every folder and image must stay inside it through any symbolic link.
    """
    confined(root, limit)
    rng = np.random.default_rng(seed)
    items: list[Item] = []
    if has_split_folders(root):
        given = [split for split in SPLITS if (root / split).is_dir()]
        for split in given:
            confined(root / split, limit)
        classes = _class_names(class_folders(root / "train"))
        for split in given:  # split by split, so the fingerprint's order stays as it was
            for label, name in enumerate(classes):
                folder = root / split / name
                files = _images(folder, limit) if folder.is_dir() else []
                files = [confined(p, limit) for p in files]
                if split == "train" and "test" not in given:
                    order = rng.permutation(len(files))
                    test = set(order[: held_out(len(files), test_fraction)].tolist())
                    items += [
                        Item(f, label, "test" if i in test else "train")
                        for i, f in enumerate(files)
                    ]
                else:
                    items += [Item(f, label, split) for f in files]
        return classes, items
    classes = _class_names(class_folders(root))
    for label, name in enumerate(classes):
        files = [confined(p, limit) for p in _images(root / name, limit)]
        order = rng.permutation(len(files)).tolist()
        n_val = held_out(len(files), val_fraction)
        n_test = held_out(len(files) - n_val, test_fraction)
        split_of = {i: "val" for i in order[:n_val]}
        split_of.update({i: "test" for i in order[n_val : n_val + n_test]})
        items += [Item(f, label, split_of.get(i, "train")) for i, f in enumerate(files)]
    return classes, items


def _class_names(folders: list[Path]) -> list[str]:
    for folder in folders:
        if not_utf8(folder.name):
            raise TangoError(
                f"{printable(str(folder))}: a class folder whose name is not UTF-8; rename it "
                "(a class name goes into labels and reports)"
            )
    return [folder.name for folder in folders]


def held_out(images: int, fraction: float) -> int:
    """How many of a class's ``images`` a seeded ``fraction`` holds out: at least one when the
    fraction is above 0, and never all of them (every class keeps a training image)."""
    if fraction <= 0 or images < 2:
        return 0
    return min(max(1, round(images * fraction)), images - 1)


def _images(folder: Path, limit: Path | None) -> list[Path]:
    """The images of a class folder, sorted; links to be read as images that lead out, loop or
    are broken are refused (others, such as an editor's lock link, are not read at all)."""
    confined(folder, limit)
    entries = sorted(folder.iterdir())
    for entry in entries:
        if image_name(entry) and entry.is_symlink():
            confined(entry, limit)
    return [entry for entry in entries if is_image(entry)]


def decode(path: Path, size: int) -> np.ndarray:
    """An image as uint8 HWC RGB at ``size`` x ``size``: read safely and upright
    (:func:`tango_ci.data.images.read_image`), resized by the deployment runtime's code."""
    from tango_ci.runtime.images import resize_square

    return resize_square(read_image(path), size)


def _read(path: Path, size: int) -> tuple[str, np.ndarray | None, str]:
    """An image's digest, pixels (None when unreadable) and why not. A file that is too large
    or not a regular file is refused before it is read, even to hash it."""
    try:
        if regular_size(path, MAX_IMAGE_BYTES) == 0:
            return "empty", None, "an empty file (0 bytes)"
    except (FileRefused, OSError) as exc:
        reason = exc.message if isinstance(exc, FileRefused) else str(exc)
        return "refused", None, f"image file refused: {reason}"[:200]
    try:
        digest = sha256(path)
    except OSError as exc:
        return "unreadable", None, f"{type(exc).__name__}: {exc}"[:200]
    try:
        return digest, decode(path, size), ""
    except Exception as exc:  # any decoder failure means an unreadable image
        # a decoder's message may quote the whole path: the host's folders stay out of it
        return digest, None, f"{type(exc).__name__}: {exc}".replace(str(path), path.name)[:200]


def duplicates(files: list[dict]) -> list[str]:
    """Warnings when identical images sit in different splits (a test image the model trained
    on scores too well) or under different labels (the same photo in two class folders): how
    many, and the first pair."""
    first: dict[str, dict] = {}
    pairs, conflicts = [], []
    for entry in files:
        seen = first.setdefault(entry["sha256"], entry)
        if seen["split"] != entry["split"]:
            pairs.append((seen["path"], entry["path"]))
        if seen.get("label") != entry.get("label"):
            conflicts.append((seen["path"], entry["path"]))
    found = []
    if pairs:
        found.append(
            f"{len(pairs)} image(s) are identical to one in another split (leakage between "
            f"splits); first: {pairs[0][0]} and {pairs[0][1]}"
        )
    if conflicts:
        found.append(
            f"{len(conflicts)} image(s) are identical to one of another class (conflicting "
            f"labels); first: {conflicts[0][0]} and {conflicts[0][1]}"
        )
    return found


def _unmeasured(classes: list[str], labels: dict[str, list]) -> list[str]:
    """A warning per held-out split that has no image of some class: its recall there cannot
    be measured (the report shows a dash, the gate's accuracy does not see the class)."""
    found = []
    for split in ("val", "test"):
        if split not in labels:
            continue
        missing = [c for i, c in enumerate(classes) if i not in set(labels[split])]
        if missing:
            shown = ", ".join(printable(c) for c in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            found.append(
                f"the {split} split has no image of the class(es) {shown}{more}: how well "
                "they are recognised cannot be measured there; add images of them"
            )
    return found


def _every_class_trains(
    root: Path, classes: list[str], train: list[int], items: list[Item], bad: list[dict]
) -> None:
    """Refuse a class none of whose training images could be read: the network would learn a
    class it has never seen, and the report would show it only as a zero."""
    empty = sorted(set(range(len(classes))) - set(train))
    if not empty:
        return
    name = classes[empty[0]]
    unreadable = sum(1 for i in items if i.label == empty[0] and i.split == "train")
    first = next((b for b in bad if b["path"].split("/")[-2:-1] == [name]), None)
    said = f"; first: {first['path']} ({first['reason']})" if first else ""
    raise TangoError(
        f"{root}: the class {name} has no readable training image ({unreadable} unreadable"
        f"{said}); fix its images or remove the folder"
        + (f" (and {len(empty) - 1} more such classes)" if len(empty) > 1 else "")
    )


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW, the network input for every engine (the deployment
    runtime's code, so a bundle feeds its network exactly as bench did)."""
    from tango_ci.runtime.images import normalise

    return normalise(images, MEAN, STD)


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
    test_fraction: float = 0.0,
    limit: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Read every image; returns classes, arrays per split, bad files and the fingerprint.

    A ``test`` split is among the arrays when the dataset has a ``test/`` folder or
    ``test_fraction`` is above 0. ``limit`` (the repository) is the folder no image may lead
    out of.
    """
    classes, items = scan_imagefolder(root, val_fraction, seed, limit, test_fraction=test_fraction)
    if len(classes) < 2:
        raise TangoError(f"{root}: need at least two classes with images, found {len(classes)}")
    splits = [s for s in SPLITS if s != "test" or any(i.split == "test" for i in items)]
    arrays: dict[str, list] = {s: [] for s in splits}
    labels: dict[str, list] = {s: [] for s in splits}
    bad: list[dict] = []
    fingerprint = hashlib.sha256()
    files: list[dict] = []
    for index, item in enumerate(items, 1):
        relative = item.path.relative_to(root).as_posix()
        if not_utf8(relative):  # kept out of files.json and the arrays, shown escaped
            digest, pixels, reason = "unnamed", None, "its file name is not UTF-8; rename it"
            relative = printable(relative)
        else:
            digest, pixels, reason = _read(item.path, image_size)
        fingerprint.update(f"{relative}\0{digest}\n".encode())
        if pixels is None:
            bad.append({"path": relative, "reason": reason})
        else:
            arrays[item.split].append(pixels)
            labels[item.split].append(item.label)
            files.append(
                {"path": relative, "sha256": digest, "label": item.label, "split": item.split}
            )
        if progress:
            progress(index, len(items))
    total = len(items)
    if total and len(bad) / total > max_bad_fraction:
        raise TooManyBadImages(bad, total, max_bad_fraction)
    # split problems after the images are read: unreadable images are the first thing to fix
    if "test" not in splits and has_split_folders(root) and (root / "test").is_dir():
        raise TangoError(f"{root}: test/ holds no image of the classes train/ has")
    if test_fraction > 0 and "test" not in splits:
        raise TangoError(
            f"{root}: data.split.test {test_fraction} holds out no image, every class is too "
            "small (each keeps a training image); add images or set data.split.test to 0"
        )
    for split in splits:
        if not arrays[split]:
            raise TangoError(f"{root}: the {split} split has no readable images")
    _every_class_trains(root, classes, labels["train"], items, bad)
    return {
        "warnings": unread_folders(root) + duplicates(files) + _unmeasured(classes, labels),
        "classes": classes,
        "arrays": {s: (np.stack(arrays[s]), np.asarray(labels[s], dtype=np.int64)) for s in arrays},
        "bad": bad,
        "files": files,
        "fingerprint": fingerprint.hexdigest(),
    }
