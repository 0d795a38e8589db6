"""Project data under DVC: `tango data track` writes the pointer and pushes; pulling restores."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tango_ci.dvcstore import pull_pointers, tree_hashes
from tests.conftest import git, write_project


def test_track_then_pull_restores_the_same_data(spec_repo: Path, tmp_path: Path) -> None:
    write_project(spec_repo, "demo")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=spec_repo, check=True)
    subprocess.run(
        [sys.executable, "-m", "dvc", "remote", "add", "-d", "local", str(tmp_path / "storage")],
        cwd=spec_repo,
        check=True,
    )
    synth = subprocess.run(
        [sys.executable, "-m", "tango_ci", "data", "synth", "projects/demo"],
        cwd=spec_repo,
        capture_output=True,
        text=True,
    )
    assert synth.returncode == 0, synth.stderr
    data = spec_repo / "projects" / "demo" / "data"
    before = tree_hashes(data)

    tracked = subprocess.run(
        [sys.executable, "-m", "tango_ci", "data", "track", "projects/demo"],
        cwd=spec_repo,
        capture_output=True,
        text=True,
    )
    assert tracked.returncode == 0, tracked.stderr
    pointer = spec_repo / "projects" / "demo" / "data.dvc"
    assert "md5:" in pointer.read_text() and "commit projects/demo/data.dvc" in tracked.stderr
    assert "/data" in (spec_repo / "projects" / "demo" / ".gitignore").read_text()
    assert any((tmp_path / "storage").rglob("*.dir"))  # pushed

    shutil.rmtree(data)
    git(spec_repo, "add", "-A")  # a fresh checkout has the pointer, not the data
    assert pull_pointers(spec_repo, spec_repo / "projects" / "demo") == [pointer]
    assert tree_hashes(data) == before and before
