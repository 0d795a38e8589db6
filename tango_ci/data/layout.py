"""Recognise dataset layouts on disk (cheap checks; the data stage reads every file).

Data stays inside the repository: ``confined()`` follows every symbolic link of a dataset and
refuses one that leads out (or loops), so a class folder linked to ``/home`` is never read.
"""

from __future__ import annotations

import os
import unicodedata
from collections import Counter
from pathlib import Path

from tango_ci.exceptions import TangoError

# .mpo: a camera's JPEG with more pictures after the first, read by the JPEG decoder
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".mpo", ".bmp", ".webp", ".tif", ".tiff"})


def image_name(path: Path) -> bool:
    """A name the data stage reads as an image: an image's suffix, not hidden (macOS's
    ``._name`` AppleDouble files carry an image's suffix but no image)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def is_image(path: Path) -> bool:
    """An image by its name (:func:`image_name`) that is a file."""
    return image_name(path) and path.is_file()


def class_folders(root: Path) -> list[Path]:
    """Sub-folders of ``root`` that hold at least one image, sorted by name."""
    if not root.is_dir():
        return []
    return sorted(
        d
        for d in root.iterdir()
        if d.is_dir() and not d.name.startswith(".") and any(map(is_image, d.iterdir()))
    )


def unread_folders(root: Path) -> list[str]:
    """Warnings for what the data stage leaves out: folders of class folders without an image
    directly inside (empty, images only in subfolders, or only files of other types), val/
    classes train/ lacks, and in class folders files of no accepted type and images in
    subfolders (one line each, with the first)."""
    split = has_split_folders(root)
    parents = [split_folder(root, s) for s in ("train", "val", "test")] if split else [root]
    val = split_folder(root, "val")
    found = _beside_splits(root) if split else []
    train = {d.name for d in class_folders(root / "train")}
    skipped: Counter[str] = Counter()
    nested: list[Path] = []
    first_skipped = ""
    for parent in (p for p in parents if p.is_dir()):
        for folder in sorted(d for d in parent.iterdir() if d.is_dir()):
            shown = folder.relative_to(root).as_posix()
            if folder.name.startswith(".") or folder.name in _IGNORED or folder.is_symlink():
                continue  # a link is refused elsewhere
            entries = sorted(folder.iterdir())
            others = [e for e in entries if _other_file(e)]
            # os.walk does not follow links: a link to / inside is not walked
            deeper = [
                Path(d) / f
                for d, _, files in os.walk(folder)
                if Path(d) != folder
                for f in sorted(files)
                if is_image(Path(d) / f)
            ]
            if not any(map(is_image, entries)):
                if deeper:
                    reason = "its images are in subfolders, which are not read"
                elif others:
                    reason = (
                        f"no image of an accepted type ({_kinds(Counter(map(_suffix, others)))})"
                    )
                else:
                    reason = "empty"
                found.append(f"{shown}: {reason}; not a class")
            elif parent == val and parent != root and folder.name not in train:
                found.append(f"{shown}: a class train/ lacks; its images are not read")
            else:
                skipped.update(map(_suffix, others))
                if others and not first_skipped:
                    first_skipped = others[0].relative_to(root).as_posix()
                nested += deeper
    if skipped:
        found.append(
            f"{sum(skipped.values())} file(s) in class folders skipped, of no accepted image "
            f"type ({_kinds(skipped)}; first: {first_skipped}); accepted: "
            + " ".join(sorted(IMAGE_SUFFIXES))
        )
    if nested:
        found.append(
            f"{len(nested)} image(s) in subfolders of class folders are not read (first: "
            f"{nested[0].relative_to(root).as_posix()}); a class is the images directly in it"
        )
    return found


#: files a class folder may hold that are not worth a word
_JUNK = frozenset({"thumbs.db", "desktop.ini"})
#: folders an archive tool leaves (macOS's zip: AppleDouble files only)
_IGNORED = frozenset({"__MACOSX"})


def _beside_splits(root: Path) -> list[str]:
    """Warnings for what lies beside train/ and val/ (not read when they are there): other
    folders holding images, and images at the top."""
    found = []
    for entry in sorted(root.iterdir()):
        name = entry.name
        if name in ("train", "test", *VAL_NAMES) or name.startswith(".") or name in _IGNORED:
            continue
        if entry.is_dir() and not entry.is_symlink() and any(map(is_image, entry.iterdir())):
            found.append(f"{name}: a folder beside train/ and val/ is not read; move it into them")
    loose = [e for e in sorted(root.iterdir()) if is_image(e)]
    if loose:
        found.append(
            f"{len(loose)} image(s) beside train/ and val/ are not read (first: {loose[0].name})"
        )
    return found


def _other_file(path: Path) -> bool:
    """A file the data stage skips because of its type (hidden files and junk aside)."""
    return (
        path.suffix.lower() not in IMAGE_SUFFIXES
        and not path.name.startswith(".")
        and path.name.lower() not in _JUNK
        and path.is_file()
    )


def _suffix(path: Path) -> str:
    return path.suffix.lower() or "no suffix"


def _kinds(counts: Counter[str]) -> str:
    shown = ", ".join(f"{kind}: {n}" for kind, n in counts.most_common(4))
    return shown + (", ..." if len(counts) > 4 else "")


def not_utf8(name: str) -> bool:
    """A file name whose bytes are not UTF-8 (Python holds them as lone surrogates): it cannot
    be written to JSON, a label or a log line as it is."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


#: the validation split's folder, by the names tools give it (Roboflow: valid/), as
#: ultralytics' classification datasets accept them; the first found is read
VAL_NAMES = ("val", "valid", "validation")


def split_folder(root: Path, split: str) -> Path:
    """The folder of ``split`` under ``root`` (``val`` under any of :data:`VAL_NAMES`)."""
    if split == "val":
        return next((root / n for n in VAL_NAMES if (root / n).is_dir()), root / "val")
    return root / split


def has_split_folders(root: Path) -> bool:
    return (root / "train").is_dir() and split_folder(root, "val").is_dir()


def imagefolder_problem(root: Path) -> str | None:
    """Why ``root`` is not an ImageFolder dataset, or None when it is one."""
    if not root.is_dir():
        return "is not a folder (imagefolder data is a folder of class folders)"
    if has_split_folders(root):
        named = split_folder(root, "val").name
        train, val = class_folders(root / "train"), class_folders(root / named)
        if not train:
            return "train/ has no class folders with images"
        if not val:
            return f"{named}/ has no class folders with images"
        if (problem := _names_problem(train + val)) is not None:
            return problem
        missing = sorted({d.name for d in train} - {d.name for d in val})
        if missing:
            return (
                f"{named}/ lacks the classes {', '.join(missing)} that train/ has"
                + _unicode_form(missing, [d.name for d in val])
            )
        if (root / "test").is_dir():
            test = class_folders(root / "test")
            if not test:
                return "test/ has no class folders with images"
            unknown = sorted({d.name for d in test} - {d.name for d in train})
            if unknown:
                return f"test/ has the classes {', '.join(unknown)} that train/ lacks"
        return None
    classes = class_folders(root)
    if len(classes) < 2 and class_folders(root / "train"):
        other = next((n for n in _VAL_NAMES if class_folders(root / n)), None)
        if other is not None:
            return f"has train/ and {other}/: rename {other}/ to val/ (the validation split's name)"
        return (
            "has train/ without val/ beside it: add val/ (class folders of validation images), "
            "or move the class folders to the top to have val/ and test/ drawn from them"
        )
    if len(classes) < 2:
        return (
            "needs at least two class folders with images (or train/ and val/ folders "
            f"of them); found {len(classes)}"
        )
    return _names_problem(classes)


#: the validation split's folder written in capitals: not read (names are case-sensitive)
_VAL_NAMES = ("Val", "Valid", "Validation", "VAL", "VALID")


def _unicode_form(missing: list[str], present: list[str]) -> str:
    """When the missing names differ from present ones only in their Unicode form (macOS
    writes names decomposed, NFD), say so: the names look the same."""
    forms = {unicodedata.normalize("NFC", name) for name in present}
    if any(unicodedata.normalize("NFC", name) in forms for name in missing):
        return (
            " (the names look the same but differ in their Unicode form, as macOS writes them "
            "decomposed; rename one of the two folders)"
        )
    return ""


def _names_problem(folders: list[Path]) -> str | None:
    """Why a class folder's name cannot be a class (its bytes are not UTF-8), or None."""
    from tango_ci.printable import printable

    for folder in folders:
        if not_utf8(folder.name):
            return (
                f"has a class folder whose name is not UTF-8 ({printable(folder.name)}); "
                "rename it (a class name goes into labels and reports)"
            )
    return None


def yolo_problem(path: Path) -> str | None:
    """Why ``path`` is not a YOLO dataset description, or None when it looks like one."""
    data_yaml = path / "data.yaml" if path.is_dir() else path
    if not data_yaml.is_file():
        return "is not a YOLO data.yaml file (nor a folder with one)"
    from tango_ci.data.yolo_yaml import load_data_yaml
    from tango_ci.printable import printable

    shown = printable(data_yaml.name)  # data.path may name any file
    _, problems = load_data_yaml(data_yaml, shown)
    return f"has a broken {shown} ({problems[0].format()})" if problems else None


FORMAT_CHECKS = {"imagefolder": imagefolder_problem, "yolo": yolo_problem}


class DataOutside(TangoError):
    """A dataset file or folder leads out of the repository, or is a link loop."""


def inside(path: Path, limit: Path | None, *, strict: bool = False) -> Path | None:
    """``path`` resolved through every link, or None when it leads out of ``limit`` or loops
    (with ``strict``, also when it is a broken link)."""
    try:
        real = path.resolve(strict=strict)
    except (OSError, RuntimeError):
        return None
    if limit is not None and not real.is_relative_to(limit.resolve()):
        return None
    return real


def confined_image(path: Path, limit: Path | None) -> Path:
    """As :func:`confined`, but a broken link whose target would lie inside ``limit`` is
    given back: reading it fails, an unreadable image like a truncated file (counted against
    ``data.max_bad_fraction``), not a reason to refuse the whole dataset."""
    if path.is_symlink() and not path.exists() and inside(path, limit) is not None:
        return path
    return confined(path, limit)


def confined(path: Path, limit: Path | None) -> Path:
    """``path`` when it stays inside ``limit`` through every link; raises otherwise."""
    if limit is None or inside(path, limit, strict=True) is not None:
        return path
    from tango_ci.rundir import display

    real = inside(path, None, strict=True)
    if real is None:
        raise DataOutside(
            f"{display(path)}: a broken symbolic link or a link loop; data must "
            "be real files inside the repository"
        )
    raise DataOutside(
        f"{display(path)}: a symbolic link out of the repository (to {real}); "
        "data must stay inside it"
    )
