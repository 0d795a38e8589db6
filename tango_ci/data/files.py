"""Reading untrusted dataset files with bounds: regular files only, sizes limited, hashes in
chunks, so a sparse 20 GB file or a FIFO named like an image neither exhausts memory nor hangs
the data stage."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tango_ci.exceptions import TangoError

#: the largest image file the data stage reads (larger ones are unreadable images): room for
#: an uncompressed 8-bit RGBA TIFF at the runtime's ``MAX_FILE_PIXELS`` (480 MB; a 108 MP
#: phone photograph), never held whole in memory (hashed in chunks, decoded by Pillow)
MAX_IMAGE_BYTES = 512 * 1024 * 1024
#: the largest label file or split list file
MAX_TEXT_BYTES = 16 * 1024 * 1024
_CHUNK = 1024 * 1024


class FileRefused(TangoError):
    """A dataset file that is not a regular file, or too large to read."""


def regular_size(path: Path, limit: int) -> int:
    """``path``'s size; raises :class:`FileRefused` for anything but a regular file of at most
    ``limit`` bytes (following links, which the layout checks keep inside the repository)."""
    if not path.is_file():
        broken = path.is_symlink() and not path.exists()
        raise FileRefused("a broken symbolic link" if broken else "not a regular file")
    size = path.stat().st_size
    if size > limit:
        raise FileRefused(f"{size} bytes, larger than the {limit} allowed")
    return size


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_bytes(path: Path, limit: int = MAX_TEXT_BYTES) -> bytes:
    """A regular file of at most ``limit`` bytes; raises :class:`FileRefused` otherwise."""
    regular_size(path, limit)
    with path.open("rb") as handle:
        raw = handle.read(limit + 1)
    if len(raw) > limit:  # it grew since it was measured
        raise FileRefused(f"larger than the {limit} bytes allowed")
    return raw


def decode_text(raw: bytes) -> str:
    """UTF-8 text, a leading byte order mark dropped (Windows editors write one); raises
    ``UnicodeDecodeError``."""
    return raw.decode("utf-8-sig")


def undecodable_line(error: UnicodeDecodeError) -> tuple[int, int]:
    """Line and column (1-based) of the first byte that is not UTF-8."""
    raw = error.object
    line = raw[: error.start].count(b"\n") + 1
    col = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
    return line, col
