"""Where an export's images are, and what of an export archive is read.

An image is looked for only inside the export's folder: under each name its entry gives
(the name itself, then under ``images/``, where CVAT's and the queue's exports keep them),
and a name that resolves outside that folder (``..``, an absolute path, a link leading out)
is never used. A name that cannot be a file name (a NUL byte, text that is not Unicode, a
name longer than the file system allows) rejects its entry only.

A ``.zip`` export (CVAT's download: ``annotations.xml`` and ``images/``) is unpacked into a
temporary folder first, bounded: at most :data:`MAX_ZIP_ENTRIES` entries and
:data:`MAX_ZIP_BYTES` bytes once unpacked, every name inside the archive, no links, nothing
encrypted; anything else refuses the archive before a byte is written.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path, PurePosixPath

from tango_ci.data.images import read_image
from tango_ci.data.layout import IMAGE_SUFFIXES
from tango_ci.exceptions import TangoError
from tango_ci.labelling._base import Entry
from tango_ci.rundir import display

MAX_ZIP_ENTRIES = 200_000
MAX_ZIP_BYTES = 16 * 2**30
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4000
_CHUNK = 2**20


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a file here, or None."""
    if "\x00" in name:
        return "its image name has a NUL byte"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "its image name is not valid Unicode text"
    if len(encoded) > MAX_PATH_BYTES or any(
        len(part.encode()) > MAX_NAME_BYTES for part in name.split("/")
    ):
        return "its image name is longer than a file name may be"
    return None


def with_images_folder(names: list[str]) -> list[str]:
    """``names`` each followed by the same name under ``images/`` (absolute names alone,
    which are refused anyway), without repeats."""
    seen: dict[str, None] = {}
    for name in names:
        seen.setdefault(name, None)
        relative = not name.startswith("/") and not name.startswith("images/")
        if relative and name:
            seen.setdefault(f"images/{name}", None)
    return list(seen)


def find_image(root: Path, candidates: list[str]) -> Path | None:
    """The first of ``candidates`` that is a file inside ``root`` (resolved), or None."""
    for name in candidates:
        if not name or name_problem(name) or name.startswith("/"):
            continue
        try:
            path = (root / name).resolve()
            if path.is_relative_to(root) and path.is_file():
                return path
        except (OSError, ValueError):  # a loop of links, a name the file system refuses
            continue
    return None


def unpack(archive: Path, into: Path) -> None:
    """Unpack the ``.zip`` ``archive`` into the empty folder ``into``, bounded (see the
    module); raises :class:`TangoError` naming what it refuses."""
    try:
        with zipfile.ZipFile(archive) as opened:
            members = _checked(archive, opened.infolist())
            budget = MAX_ZIP_BYTES
            for info, parts in members:
                target = into.joinpath(*parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with opened.open(info) as read, open(target, "xb") as write:
                    while chunk := read.read(_CHUNK):
                        budget -= len(chunk)
                        if budget < 0:
                            raise TangoError(f"{display(archive)}: {_too_large()}")
                        write.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise TangoError(f"{display(archive)}: not a zip archive this reads ({exc})") from None
    except OSError as exc:
        raise TangoError(f"{display(archive)}: cannot be unpacked ({exc.strerror})") from None


def _too_large() -> str:
    return f"unpacks to more than {MAX_ZIP_BYTES >> 30} GiB; nothing was imported"


def _checked(
    archive: Path, infos: list[zipfile.ZipInfo]
) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """The members to unpack with their path parts; refuses the archive for a member that
    would leave the folder, a link, an encrypted member, or too many or too large ones."""
    if len(infos) > MAX_ZIP_ENTRIES:
        raise TangoError(f"{display(archive)}: more than {MAX_ZIP_ENTRIES} entries")
    if sum(info.file_size for info in infos) > MAX_ZIP_BYTES:
        raise TangoError(f"{display(archive)}: {_too_large()}")
    members, seen = [], set()
    for info in infos:
        name = info.filename
        shown = f"{display(archive)}: entry '{name[:80]}'"
        if name.startswith("__MACOSX/"):  # macOS's resource forks beside every file
            continue
        path = PurePosixPath(name.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or not path.parts or ":" in path.parts[0]:
            raise TangoError(f"{shown} would be written outside the folder; nothing was imported")
        if name_problem(name):
            raise TangoError(f"{shown} cannot be a file name here; nothing was imported")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise TangoError(f"{shown} is a symbolic link; nothing was imported")
        if info.flag_bits & 0x1:
            raise TangoError(f"{shown} is encrypted; nothing was imported")
        key = os.path.normcase(path.as_posix().rstrip("/"))
        if key in seen and not info.is_dir():
            raise TangoError(f"{shown} comes twice in the archive; nothing was imported")
        seen.add(key)
        members.append((info, path.parts))
    return members


def archived_export(archive: Path, folder: Path) -> Path:
    """The export file at the top of the unpacked ``folder``: CVAT's ``annotations.xml``, or
    the one ``.json`` (Label Studio) there."""
    xml = folder / "annotations.xml"
    if xml.is_file() and not xml.is_symlink():
        return xml
    found = [p for p in folder.glob("*.json") if p.is_file() and not p.is_symlink()]
    if len(found) == 1:
        return found[0]
    raise TangoError(
        f"{display(archive)}: holds no annotations.xml (CVAT for images 1.1) or one .json "
        "(Label Studio) at its top; nothing was imported"
    )


def image_source(entry: Entry, root: Path) -> tuple[Path, int, int] | str:
    """The image file of ``entry`` inside ``root`` and its width and height, or why not."""
    if entry.problem is not None:
        return entry.problem
    source = find_image(root, entry.candidates)
    if source is None:
        return name_problem(entry.image) or (
            f"image '{entry.image[:80]}' is not a file beside the export (nor in images/ beside it)"
        )
    unread = unread_name(source.name)
    if unread:
        return f"image '{entry.image[:80]}' {unread}"
    try:  # allowed decoders only, bounded, upright as the labelling tool showed it
        height, width = read_image(source).shape[:2]
    except Exception:  # Pillow's decoders raise many kinds; all mean "not an image"
        return f"image '{entry.image[:80]}' is not an image"
    return source, width, height


def unread_name(name: str) -> str | None:
    """Why the data stage would not read a file of this name, or None."""
    suffixes = " ".join(sorted(IMAGE_SUFFIXES))
    if name.startswith("."):
        return f"has a hidden name ('{name[:40]}'), which the data stage skips"
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in IMAGE_SUFFIXES:
        kind = f"is a {suffix[:20]} file" if suffix else "has no suffix"
        return f"{kind}, which the data stage does not read (it reads {suffixes})"
    return None
