"""`tango data track` names the files `dvc add` wrote, and only those: no .gitignore when the
repository's own already ignores the data folder, nothing when the data is as tracked before."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from tango_ci import api
from tango_ci.cli import app
from tests.conftest import write_project


def _dvc_repo(root: Path, storage: Path) -> Path:
    """``root`` (a git repository) made a DVC one with a local remote; the demo project's data
    synthesised; returns the project folder."""
    write_project(root, "demo")
    for command in (["init", "-q"], ["remote", "add", "-d", "local", str(storage)]):
        subprocess.run([sys.executable, "-m", "dvc", *command], cwd=root, check=True)
    project = root / "projects" / "demo"
    api.synth_project_data(project)
    return project


def test_no_gitignore_is_named_when_the_root_one_ignores_the_data(
    spec_repo: Path, tmp_path: Path
) -> None:
    (spec_repo / ".gitignore").write_text("/projects/*/data/\n")
    project = _dvc_repo(spec_repo, tmp_path / "storage")
    printed = CliRunner().invoke(app, ["data", "track", "projects/demo"])
    assert printed.exit_code == 0, printed.output
    assert not (project / ".gitignore").exists()
    assert "commit projects/demo/data.dvc\n" in printed.output
    assert ".gitignore" not in printed.output
    again = CliRunner().invoke(app, ["data", "track", "projects/demo"])
    assert "unchanged, its pointer projects/demo/data.dvc is as before" in again.output


def test_the_gitignore_dvc_writes_is_named(spec_repo: Path, tmp_path: Path) -> None:
    project = _dvc_repo(spec_repo, tmp_path / "storage")
    (tracked,) = api.track_data(project)
    assert tracked.pointer == project.resolve() / "data.dvc"
    assert tracked.changed == (tracked.pointer, project.resolve() / ".gitignore")
    assert "/data" in (project / ".gitignore").read_text()
    (project / "data" / "circle" / "circle_00000.png").unlink()
    (again,) = api.track_data(project)
    assert again.changed == (tracked.pointer,)  # the .gitignore already lists the folder
