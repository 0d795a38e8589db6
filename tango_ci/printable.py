"""Text from outside (file names, YAML keys and values, records) made safe to print as one line.

Control characters become their escapes (``\\n``, ``\\x1b``), so a name in a pushed file cannot
start a line of its own (a forged GitHub workflow command such as ``::error``) or move a
terminal's cursor. Every line the CLI prints about user input goes through :func:`printable`.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` with each control character (and Unicode line separator) as its escape."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
