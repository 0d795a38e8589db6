"""Checks of ``gate.challenger`` (the champion/challenger gate's folders)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tango_ci.spec.paths import escape_problem, resolve_inside

if TYPE_CHECKING:
    from tango_ci.spec.loader import _Checker


def check_challenger(
    checker: _Checker, challenger: dict, task: Any, project_dir: Path, repo_root: Path
) -> None:
    """``gate.challenger``: a task that scores new data, folders inside the repository, a
    holdout that exists (new_data may not yet: the first import makes it)."""
    here = ("gate", "challenger")
    if not task.challenger_data:
        checker.add(
            here,
            f"champion/challenger on new data is not built for {task.name} projects yet; "
            "use gate.metric and gate.min_improvement",
            prefer_key=True,
        )
        return
    for key in ("new_data", "holdout"):
        relative = challenger.get(key)
        if relative is None:
            continue
        resolved = resolve_inside(relative, project_dir, repo_root)
        escape = escape_problem(relative, resolved, repo_root)
        if escape:
            checker.add(here + (key,), escape)
        elif key == "holdout" and not (
            resolved.is_dir() or resolved.with_name(resolved.name + ".dvc").exists()
        ):
            checker.add(here + (key,), f"holdout folder '{relative}' does not exist")
    if challenger.get("new_data") == challenger.get("holdout"):
        checker.add(here + ("holdout",), "the holdout must not be the new data folder")
