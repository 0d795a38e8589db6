"""Paths a spec names: resolved from the project folder (else the repository root) and kept
inside the repository."""

from __future__ import annotations

from pathlib import Path


def resolve_inside(relative: str, project_dir: Path, repo_root: Path) -> Path:
    """Resolve a path from the spec: relative to the project folder, else to the repo root.

    A link loop resolves to the unresolved path, which ``escape_problem`` then reports.
    """
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
    """Why a spec path leads out of the repository (or loops), or None when it stays inside."""
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
