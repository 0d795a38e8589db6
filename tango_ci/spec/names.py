"""Project names are unique in a repository: runs, registry tags and reports are kept by name."""

from __future__ import annotations

from pathlib import Path

from tango_ci.spec._yaml import load_located
from tango_ci.spec.loader import display_path
from tango_ci.spec.problems import Problem


def name_taken(path: Path, named: dict[str, Path]) -> list[Problem]:
    """The problem of a valid project file named like one seen before it (``named``: name ->
    file, updated); both would write ``runs/<name>/`` and its latest link, and tags and reports
    of that name."""
    document = load_located(path, display_path(path))
    name = document.data["name"]
    if name not in named:
        named[name] = path
        return []
    where = document.position(("name",), prefer_key=False)
    return [
        Problem(
            display_path(path),
            where.line,
            where.col,
            "name",
            f"'{name}' is also the name of {display_path(named[name])}; runs, registry tags "
            "and reports are kept by project name",
        )
    ]
