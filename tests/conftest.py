"""Shared fixtures: a throw-away repository laid out like a TANGO-CI fork."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")

MINIMAL_PROJECT = """\
name: demo
task: classification
data:
  path: data
  format: imagefolder
  synth: {images_per_class: 10, size: 16}
targets:
  - name: cpu
    runner: local-cpu
    engine: onnxruntime
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def spec_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with the real runners/ and schemas/, cwd set to it."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    shutil.copytree(REPO / "runners", root / "runners", ignore=shutil.ignore_patterns("README.md"))
    shutil.copytree(REPO / "schemas", root / "schemas")
    (root / "projects").mkdir()
    monkeypatch.chdir(root)
    return root


def write_project(root: Path, name: str, text: str = MINIMAL_PROJECT) -> Path:
    folder = root / "projects" / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "project.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with end-to-end (slow) tests first, each file kept whole. `make test` hands whole
    files to its two pytest-xdist workers (``--dist loadfile``: a module's expensive fixture,
    such as a pipeline run, is built once, not on both workers), in this order
    (``--no-loadscope-reorder``), so the minutes-long files overlap each other and short ones
    fill the end, instead of one long file running alone at the end."""
    slow = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow)
