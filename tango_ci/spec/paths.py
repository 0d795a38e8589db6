"""Paths a spec names: resolved from the project folder (else the repository root) and kept
inside the repository."""

from __future__ import annotations

from pathlib import Path

from tango_ci.printable import printable
from tango_ci.spec.problems import Problem

NAME_BYTES = 255  # the longest file name Linux, macOS and Windows file systems take
PATH_BYTES = 4096


def text_problem(relative: str) -> str | None:
    """Why ``relative`` cannot name a file on any common file system (a control character, a
    name or path too long), or None. Checked before the path touches the file system."""
    if printable(relative) != relative:  # a control character or line separator
        return "contains a control character; use a plain file name"
    try:
        relative.encode()
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in a quoted YAML string)
        return "is not valid Unicode text"
    if len(relative.encode()) > PATH_BYTES:
        return f"is longer than {PATH_BYTES} bytes"
    if any(len(part.encode()) > NAME_BYTES for part in relative.replace("\\", "/").split("/")):
        return f"has a name longer than {NAME_BYTES} bytes"
    return None


def resolve_inside(relative: str, project_dir: Path, repo_root: Path) -> Path:
    """Resolve a path from the spec: relative to the project folder, else to the repo root.

    A link loop resolves to the unresolved path, and a path no file system takes (see
    :func:`text_problem`) to the project folder itself, untouched; ``escape_problem`` then
    reports either.
    """
    if text_problem(relative):
        return project_dir
    candidate = resolve_path(project_dir / relative)
    if not candidate.exists() and not Path(relative).is_absolute():
        from_root = resolve_path(repo_root / relative)
        if from_root.exists():
            return from_root
    return candidate


def resolve_path(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symbolic link loop
        return path


def escape_problem(relative: str, resolved: Path, repo_root: Path) -> str | None:
    """Why a spec path cannot be used (no file system takes it, it leads out of the repository
    or loops), or None when it stays inside."""
    if problem := text_problem(relative):
        return problem
    if resolved.is_symlink() or resolve_path(resolved) != resolved:
        return f"'{relative}' is a symbolic link loop"
    if resolved.is_relative_to(repo_root):
        return None
    if Path(relative).is_absolute():
        return f"'{relative}' is outside the repository; use a path inside it"
    if ".." in Path(relative).parts:
        return f"'{relative}' leads outside the repository; use a path inside it"
    return (
        f"'{relative}' is a symbolic link out of the repository (to {resolved}); "
        "use a path inside it"
    )


SQLITE = "sqlite:///"


def storage_problem(url: str, project_dir: Path, repo_root: Path) -> str | None:
    """Why a project file's ``search.storage`` is refused, or None. A project file comes with
    pull requests, so it may name only an SQLite file inside the repository: a database server
    (and its password) is given on the command line, ``tango search --storage URL``."""
    if not url.startswith(SQLITE) or url.startswith(SQLITE + "/"):
        return (
            "a project file names only an SQLite file inside the repository "
            "(sqlite:///relative/path.db); give a database server on the command line "
            "(tango search --storage URL), never in a file a pull request can change"
        )
    relative = url[len(SQLITE) :]
    if "?" in relative or not relative:
        return "name the SQLite file only (sqlite:///relative/path.db), without options"
    return escape_problem(relative, resolve_inside(relative, project_dir, repo_root), repo_root)


def missing_project(path: Path, repo_root: Path) -> Problem | None:
    """The problem of a project path that does not exist, with what to do about it (the
    likely mistake: running from inside the project's folder, or from another folder of the
    repository); None when it exists."""
    if path.exists() or path.is_symlink():
        return None
    here, root = Path.cwd().resolve(), printable(str(repo_root))
    hint = ""
    if (here / "project.yaml").is_file():
        hint = f" (this folder holds a project.yaml: give '.', or run from {root})"
    elif not path.is_absolute() and (repo_root / path).exists() and repo_root.resolve() != here:
        hint = f" (from here; run from the repository root, {root})"
    return Problem(str(path), 0, 0, "", f"file not found{hint}")
