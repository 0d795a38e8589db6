"""Text from outside (file names, YAML keys and values, records) made safe to print as one line.

Control characters become their escapes (``\\n``, ``\\x1b``), so a name in a pushed file cannot
start a line of its own (a forged GitHub workflow command such as ``::error``) or move a
terminal's cursor. Every line the CLI prints about user input goes through :func:`printable`.
"""

from __future__ import annotations

import re

#: control characters, Unicode line separators, and the lone surrogates by which Python holds
#: the bytes of a file name that is not UTF-8 (printing one would raise)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with each control character (Unicode line separator, lone surrogate) as its
    escape."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match) -> str:
    char = match.group()
    if "\udc80" <= char <= "\udcff":  # a byte of a name that is not UTF-8, as the byte
        return f"\\x{ord(char) - 0xDC00:02x}"
    return char.encode("unicode_escape").decode("ascii")


def markdown_cell(text: object, limit: int = 200) -> str:
    """``text`` as one cell of a Markdown table: one line, no column break, no HTML (a class
    folder named ``<img src=x onerror=...>`` is shown, not rendered), at most ``limit``
    characters."""
    flat = " ".join(printable(str(text)).split())[:limit]
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
