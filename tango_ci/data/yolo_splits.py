"""Where a YOLO split's images are: data.yaml's entries for it (folders, list files, or a list
of them) resolved inside the repository, each image once and in order."""

from __future__ import annotations

import os
from pathlib import Path

from tango_ci.data.files import FileRefused, decode_text, read_bytes, undecodable_line
from tango_ci.data.layout import IMAGE_SUFFIXES, inside
from tango_ci.data.yolo_yaml import quoted
from tango_ci.spec.problems import Problem

STAY = "data must stay inside it"


def relative_name(path: Path, base: Path) -> str:
    """``path`` relative to the folder ``base``, with ``..`` for a file beside it (a split
    folder outside the dataset's ``path:`` but inside the repository)."""
    try:
        return Path(os.path.relpath(path, base)).as_posix()
    except ValueError:  # another drive
        return str(path)


def split_images(
    root: Path,
    entries: tuple[str, ...],
    limit: Path | None,
    base: Path,
    at,
    undecoded: list[Path],
) -> tuple[list[Path], list[Problem], list[str]]:
    """The images of one split's entries (folders or list files: any file is read as a list
    of images, as ultralytics reads it), in order, each once; the entries' problems; and the
    entries that do not exist."""
    found: dict[Path, None] = {}
    problems: list[Problem] = []
    missing: list[str] = []
    for value in entries:
        folder = _split_folder(root, value, limit)
        if folder is None:
            problems.append(at(f"{quoted(value)} leads out of the repository; {STAY}"))
            continue
        kind = _kind(folder)
        if kind == "file":
            listed, listing = _listed(folder, base)
            problems.extend(listing)
            problems.extend(
                Problem(relative_name(p, base), 0, 0, "", f"listed in {quoted(value)} but missing")
                for p in listed
                if not p.exists()
            )
        elif kind == "folder":
            listed = _images(folder, undecoded)
        else:
            missing.append(value)
            continue
        found.update(dict.fromkeys(listed))
    return list(found), problems, missing


def under(root: Path, base: Path) -> str:
    """Where split entries were looked for, when data.yaml's ``path:`` moved it."""
    return "" if root == base else f" (under path: {quoted(relative_name(root, base))})"


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


#: image types ultralytics reads that this stage does not decode (untrusted files are read
#: with the PNG, JPEG, BMP, WebP and TIFF decoders only): left out, and warned of
_UNDECODED = frozenset({".avif", ".heic", ".heif", ".dng", ".jp2"})


def _images(folder: Path, undecoded: list[Path]) -> list[Path]:
    """Images under ``folder`` by suffix, sorted; hidden files and folders (``._name``
    AppleDouble files, ``.git``) left out. Images of :data:`_UNDECODED` types are added to
    ``undecoded``."""
    found = []
    for p in sorted(folder.rglob("*")):
        if any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue
        if p.suffix.lower() in IMAGE_SUFFIXES:
            found.append(p)
        elif p.suffix.lower() in _UNDECODED:
            undecoded.append(p)
    return found


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
