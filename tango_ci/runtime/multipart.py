"""The image of a ``multipart/form-data`` body (what ``curl -F file=@x.jpg``, browsers' forms
and most HTTP libraries send), for ``POST /v2/models/NAME/image``.

The body has already been read whole and bounded by ``--max-bytes``; this only finds the part
that holds the file, without the standard library's e-mail parser (which builds every part in
memory as a message and decodes transfer encodings). At most ``MAX_PARTS`` parts are looked at,
and their headers at most ``MAX_HEADER_BYTES`` each.
"""

from __future__ import annotations

import re

MAX_PARTS = 16
MAX_HEADER_BYTES = 4096
#: RFC 2046: 1 to 70 characters of a restricted set
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_PARAMETER = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*("([^"\\]*)"|[^;\s]*)')
#: the form fields taken for the image when no part names a file
FIELDS = ("file", "image")


class MultipartError(ValueError):
    """A multipart body without a readable file part; the message is one line."""


def is_multipart(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == "multipart/form-data"


def file_part(body: bytes, content_type: str) -> bytes:
    """The content of the first part that carries a file name (else of a part named ``file``
    or ``image``) of a ``multipart/form-data`` ``body``."""
    boundary = _parameters(content_type).get("boundary")
    if boundary is None or not _BOUNDARY.fullmatch(boundary):
        raise MultipartError("multipart/form-data without a valid boundary parameter")
    delimiter = b"--" + boundary.encode("ascii")
    start = body.find(delimiter)
    if start < 0:
        raise MultipartError("the multipart body has no part")
    named: bytes | None = None
    position = start
    for _ in range(MAX_PARTS):
        position += len(delimiter)
        if body[position : position + 2] == b"--":  # the closing delimiter
            break
        head_end = body.find(b"\r\n\r\n", position, position + MAX_HEADER_BYTES)
        end = body.find(b"\r\n" + delimiter, position)
        if head_end < 0 or end < 0 or head_end > end:
            raise MultipartError("a multipart part is not closed by its boundary")
        disposition = _disposition(body[position:head_end])
        content = body[head_end + 4 : end]
        if "filename" in disposition or "filename*" in disposition:
            return content
        if named is None and disposition.get("name") in FIELDS:
            named = content
        position = end + 2
    if named is None:
        raise MultipartError(
            f"no part of the multipart body is a file (a part with a filename, or a field "
            f"named {' or '.join(FIELDS)}; at most {MAX_PARTS} parts are read)"
        )
    return named


def _disposition(head: bytes) -> dict[str, str]:
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-disposition":
            return _parameters(value)
    return {}


def _parameters(header: str) -> dict[str, str]:
    """``key=value`` and ``key="value"`` parameters after a header's first ``;``."""
    found: dict[str, str] = {}
    for match in _PARAMETER.finditer(header):
        value = match.group(3) if match.group(3) is not None else match.group(2)
        found.setdefault(match.group(1).lower(), value)
    return found
