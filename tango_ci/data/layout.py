"""Recognise dataset layouts on disk (cheap checks; the data stage reads every file).

Data stays inside the repository: ``confined()`` follows every symbolic link of a dataset and
refuses one that leads out (or loops), so a class folder linked to ``/home`` is never read.
"""

from __future__ import annotations

import os
from pathlib import Path

from tango_ci.exceptions import TangoError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})


def is_image(path: Path) -> bool:
    """An image by its suffix; hidden files (macOS's ``._name`` AppleDouble files, which carry
    an image's suffix but no image) are not."""
    return (
        path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()
    )


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
    """Warnings for folders the data stage leaves out: folders of class folders without an
    image directly inside (empty, or images only in subfolders), and val/ classes train/ lacks."""
    parents = [root / s for s in ("train", "val", "test")] if has_split_folders(root) else [root]
    found = []
    train = {d.name for d in class_folders(root / "train")}
    for parent in (p for p in parents if p.is_dir()):
        for folder in sorted(d for d in parent.iterdir() if d.is_dir()):
            shown = folder.relative_to(root).as_posix()
            if folder.name.startswith(".") or folder.is_symlink():  # a link is refused elsewhere
                continue
            if not any(map(is_image, folder.iterdir())):
                # os.walk does not follow links: a link to / inside is not walked
                deeper = any(
                    is_image(Path(d) / f) for d, _, files in os.walk(folder) for f in files
                )
                reason = "its images are in subfolders, which are not read" if deeper else "empty"
                found.append(f"{shown}: {reason}; not a class")
            elif parent.name == "val" and parent != root and folder.name not in train:
                found.append(f"{shown}: a class train/ lacks; its images are not read")
    return found


def has_split_folders(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "val").is_dir()


def imagefolder_problem(root: Path) -> str | None:
    """Why ``root`` is not an ImageFolder dataset, or None when it is one."""
    if not root.is_dir():
        return "is not a folder (imagefolder data is a folder of class folders)"
    if has_split_folders(root):
        train, val = class_folders(root / "train"), class_folders(root / "val")
        if not train:
            return "train/ has no class folders with images"
        if not val:
            return "val/ has no class folders with images"
        missing = sorted({d.name for d in train} - {d.name for d in val})
        if missing:
            return f"val/ lacks the classes {', '.join(missing)} that train/ has"
        if (root / "test").is_dir():
            test = class_folders(root / "test")
            if not test:
                return "test/ has no class folders with images"
            unknown = sorted({d.name for d in test} - {d.name for d in train})
            if unknown:
                return f"test/ has the classes {', '.join(unknown)} that train/ lacks"
        return None
    classes = class_folders(root)
    if len(classes) < 2:
        return (
            "needs at least two class folders with images (or train/ and val/ folders "
            f"of them); found {len(classes)}"
        )
    return None


def yolo_problem(path: Path) -> str | None:
    """Why ``path`` is not a YOLO dataset description, or None when it looks like one."""
    data_yaml = path / "data.yaml" if path.is_dir() else path
    if not data_yaml.is_file():
        return "is not a YOLO data.yaml file (nor a folder with one)"
    from tango_ci.data.yolo_yaml import load_data_yaml

    _, problems = load_data_yaml(data_yaml, "data.yaml")
    return f"has a broken data.yaml ({problems[0].format()})" if problems else None


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
