"""A problem found in a spec file, and the ways it is printed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from tango_ci.printable import printable


@dataclass(frozen=True, order=True)
class Position:
    line: int
    col: int


@dataclass(frozen=True, order=True)
class Problem:
    """One finding: ``file:line:col: field.path: message``. Line 0 means "the file itself"."""

    file: str
    line: int
    col: int
    field: str
    message: str

    def format(self) -> str:
        """One line: keys and values quoted from the file keep their control characters
        escaped."""
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        text = (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )
        return printable(text)

    def github_annotation(self) -> str:
        """A workflow command that makes GitHub show the problem on the pull request's diff."""
        props = [f"file={_escape_property(printable(self.file))}"]
        if self.line:
            props += [f"line={self.line}", f"col={self.col}"]
        props.append(f"title={_escape_property('tango validate')}")
        text = f"{self.field}: {self.message}" if self.field else self.message
        return f"::error {','.join(props)}::{_escape_data(printable(text))}"


def format_field(path: Iterable[str | int]) -> str:
    """``("targets", 0, "engine")`` -> ``targets[0].engine``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def problems_to_json(problems: list[Problem]) -> str:
    return json.dumps({"problems": [asdict(p) for p in problems], "count": len(problems)}, indent=2)


# GitHub's workflow-command escaping (toolkit/packages/core/src/command.ts).
def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
