"""The data stage for ImageFolder datasets: split, read every image, fingerprint, save arrays.

Images are decoded once here and saved as uint8 arrays (``train.npz``, ``val.npz`` and
``test.npz``) in the run folder, so later stages (on other machines, too) use exactly the same
pixels. The test split is only for the gate and the report: search and training never read it.
Each image's split follows from its content (:func:`assign_splits`), not from the other files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tango_ci.data.files import MAX_IMAGE_BYTES, FileRefused, regular_size, sha256
from tango_ci.data.images import read_image
from tango_ci.data.layout import (
    class_folders,
    confined,
    confined_image,
    has_split_folders,
    image_name,
    is_image,
    not_utf8,
    split_folder,
    unread_folders,
)
from tango_ci.data.rows import pixels_for, split_slices
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
    """Classes and items, each in its split (:func:`assign_splits`). Files that cannot be
    hashed stay in training; undecodable ones count here, not in :func:`build_arrays`, so in a
    class whose minimums need a move the two can differ.

    With ``limit``, every folder and image must stay inside it through any symbolic link.
    """
    classes, items = list_imagefolder(root, limit)
    val, test = drawn_fractions(root, val_fraction, test_fraction)
    digests: list[str | None] = [None] * len(items)
    if val > 0 or test > 0:
        for index, item in enumerate(items):
            if item.split == "train" and not not_utf8(item.path.relative_to(root).as_posix()):
                digest, reason = _hashed(item.path)
                digests[index] = None if reason else digest
    return classes, assign_splits(items, digests, val, test, seed)


def list_imagefolder(root: Path, limit: Path | None = None) -> tuple[list[str], list[Item]]:
    """Classes and items, each in the split of its folder: ``train`` for every image of one
    folder without ``train/`` and ``val/`` (then :func:`assign_splits` draws the others)."""
    confined(root, limit)
    if not has_split_folders(root):
        classes = _class_names(class_folders(root))
        return classes, [
            Item(confined_image(p, limit), label, "train")
            for label, name in enumerate(classes)
            for p in _images(root / name, limit)
        ]
    given = {s: split_folder(root, s) for s in SPLITS if split_folder(root, s).is_dir()}
    for folder in given.values():
        confined(folder, limit)
    classes = _class_names(class_folders(root / "train"))
    items = []
    for split in given:  # split by split, so the fingerprint's order stays as it was
        for label, name in enumerate(classes):
            folder = given[split] / name
            files = _images(folder, limit) if folder.is_dir() else []
            items += [Item(confined_image(p, limit), label, split) for p in files]
    return classes, items


def drawn_fractions(root: Path, val_fraction: float, test_fraction: float) -> tuple[float, float]:
    """The fractions drawn from the training images: validation only from one folder, test
    unless a ``test/`` folder is given (used as it is)."""
    if not has_split_folders(root):
        return val_fraction, test_fraction
    return 0.0, 0.0 if (root / "test").is_dir() else test_fraction


def assign_splits(
    items: list[Item], digests: list[str | None], val: float, test: float, seed: int
) -> list[Item]:
    """``items`` with their training images (``digests[i]``: the SHA-256 of item i's bytes,
    None when unreadable) split by content; identical images share a split.

    Hashing the seed with the digest places an image at u in [0, 1). The test split (the
    gate's, kept apart across runs) is the images with u at or above ``1 - test * (1 -
    val)``: whether an image is in it never depends on the other images, so adding images
    never moves a training image into it nor one out of it. Validation is the images of
    lowest u among the rest, :func:`held_out` of the class (its exact share, as a small
    class needs); training the others. Each class, counting identical images once and
    unreadable ones not at all, keeps a training image, and a test image when two images are
    left beyond validation (the one of highest u, only when none reached the threshold).
    Unreadable images stay in training (out of every array).
    """
    if val <= 0 and test <= 0:
        return items
    classes: dict[int, dict[str, list[int]]] = {}
    for index, (item, digest) in enumerate(zip(items, digests, strict=True)):
        if item.split == "train" and digest is not None:
            classes.setdefault(item.label, {}).setdefault(digest, []).append(index)
    assigned = list(items)
    for groups in classes.values():
        place = _kept({digest: _position(digest, seed) for digest in groups}, val, test)
        for digest, indices in groups.items():
            for index in indices:
                assigned[index] = replace(items[index], split=place[digest])
    return assigned


def _position(digest: str, seed: int) -> float:
    """Where an image's content and the seed place it in [0, 1)."""
    mixed = hashlib.sha256(f"{seed}\0{digest}".encode()).digest()
    return int.from_bytes(mixed[:8], "big") / 2**64


def _kept(position: dict[str, float], val: float, test: float) -> dict[str, str]:
    """The split of each distinct image of one class (see :func:`assign_splits`)."""
    order = sorted(position, key=lambda d: (position[d], d))
    count = held_out(len(order), val)
    room = len(order) - count - 1  # images the test split may take: one stays to train
    top = 1 - test * (1 - val)
    tested = [d for d in reversed(order) if test > 0 and position[d] >= top][: max(room, 0)]
    if test > 0 and not tested and room >= 1:
        tested = [order[-1]]
    rest = [d for d in order if d not in tested]
    place = {d: "val" for d in rest[:count]} | {d: "train" for d in rest[count:]}
    return place | {d: "test" for d in tested}


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
    """The images of a class folder, sorted; links with an image's name that lead out or loop
    are refused, broken ones kept to be found unreadable (:func:`confined_image`)."""
    confined(folder, limit)
    entries = sorted(folder.iterdir())
    links = {e for e in entries if image_name(e) and e.is_symlink() and confined_image(e, limit)}
    return [entry for entry in entries if is_image(entry) or entry in links]


def decode(path: Path, size: int) -> np.ndarray:
    """An image as uint8 HWC RGB at ``size`` x ``size``: read safely and upright
    (:func:`tango_ci.data.images.read_image`), resized by the deployment runtime's code."""
    from tango_ci.runtime.images import resize_square

    return resize_square(read_image(path), size)


def _hashed(path: Path) -> tuple[str, str]:
    """An image file's SHA-256, or a stand-in and why it cannot be read. A file that is too
    large or not a regular file is refused before it is read, even to hash it."""
    try:
        if regular_size(path, MAX_IMAGE_BYTES) == 0:
            return "empty", "an empty file (0 bytes)"
    except (FileRefused, OSError) as exc:
        reason = exc.message if isinstance(exc, FileRefused) else str(exc)
        return "refused", f"image file refused: {reason}"[:200]
    try:
        return sha256(path), ""
    except OSError as exc:
        return "unreadable", f"{type(exc).__name__}: {exc}"[:200]


def read_checked(path: Path, size: int) -> tuple[str, np.ndarray | None, str]:
    """An image's digest, pixels (None when unreadable) and why not."""
    digest, reason = _hashed(path)
    if reason:
        return digest, None, reason
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
    root: Path, classes: list[str], train: list[int], items: list[Item], bad: dict[int, dict]
) -> None:
    """Refuse a class none of whose training images could be read (``bad``: by item index):
    the network would learn a class it has never seen, and the report would show it only as
    a zero. Its training images are then all unreadable: the first is named."""
    empty = sorted(set(range(len(classes))) - set(train))
    if not empty:
        return
    unreadable = [
        bad[i]
        for i, item in enumerate(items)
        if i in bad and item.label == empty[0] and item.split == "train"
    ]
    said = f"; first: {unreadable[0]['path']} ({unreadable[0]['reason']})" if unreadable else ""
    raise TangoError(
        f"{root}: the class {classes[empty[0]]} has no readable training image "
        f"({len(unreadable)} unreadable{said}); fix its images or remove the folder"
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
    classes, items = list_imagefolder(root, limit)
    if len(classes) < 2:
        raise TangoError(f"{root}: need at least two classes with images, found {len(classes)}")
    bad: dict[int, dict] = {}
    fingerprint = hashlib.sha256()
    read: list[tuple[str, str, bool]] = []  # each image's name, digest and readability
    pixels_of = pixels_for(root, len(items), image_size)
    for index, item in enumerate(items):
        relative = item.path.relative_to(root).as_posix()
        if not_utf8(relative):  # kept out of files.json and the arrays, shown escaped
            digest, pixels, reason = "unnamed", None, "its file name is not UTF-8; rename it"
            relative = printable(relative)
        else:
            digest, pixels, reason = read_checked(item.path, image_size)
        fingerprint.update(f"{relative}\0{digest}\n".encode())
        read.append((relative, digest, pixels is not None))
        if pixels is None:
            bad[index] = {"path": relative, "reason": reason}
        else:
            pixels_of[index] = pixels
        if progress:
            progress(index + 1, len(items))
    # split once every image is read, so unreadable ones count for no split's minimum
    digests = [digest if readable else None for _, digest, readable in read]
    items = assign_splits(items, digests, *drawn_fractions(root, val_fraction, test_fraction), seed)
    splits = [s for s in SPLITS if s != "test" or any(i.split == "test" for i in items)]
    rows_of: dict[str, list[int]] = {s: [] for s in splits}
    labels: dict[str, list] = {s: [] for s in splits}
    files: list[dict] = []
    for row, (item, (relative, digest, readable)) in enumerate(zip(items, read, strict=True)):
        if readable:
            rows_of[item.split].append(row)
            labels[item.split].append(item.label)
            files.append(
                {"path": relative, "sha256": digest, "label": item.label, "split": item.split}
            )
    total = len(items)
    if total and len(bad) / total > max_bad_fraction:
        raise TooManyBadImages(list(bad.values()), total, max_bad_fraction)
    # split problems after the images are read: unreadable images are the first thing to fix
    if "test" not in splits and has_split_folders(root) and (root / "test").is_dir():
        raise TangoError(f"{root}: test/ holds no image of the classes train/ has")
    if test_fraction > 0 and "test" not in splits:
        raise TangoError(
            f"{root}: data.split.test {test_fraction} holds out no image, every class is too "
            "small (each keeps a training image); add images or set data.split.test to 0"
        )
    for split in splits:
        if not rows_of[split]:
            raise TangoError(f"{root}: the {split} split has no readable images")
    _every_class_trains(root, classes, labels["train"], items, bad)
    return {
        "warnings": unread_folders(root) + duplicates(files) + _unmeasured(classes, labels),
        "classes": classes,
        "arrays": {
            s: (pixels, np.asarray(labels[s], dtype=np.int64))
            for s, pixels in split_slices(pixels_of, rows_of).items()
        },
        "bad": list(bad.values()),
        "files": files,
        "fingerprint": fingerprint.hexdigest(),
    }
