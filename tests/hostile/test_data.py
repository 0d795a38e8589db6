"""Hostile datasets: links out of the repository, link loops, data.yaml paths elsewhere, and
two runs making the same synthetic data at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.hostile.conftest import Tree, refused, tango_here
from tests.pipeline_helpers import make_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    from tango_ci import api

    project = make_repo(tmp_path / "repo", per_class=4, extra_targets="")
    api.synth_project_data(project)
    return project.parent.parent


def _image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(path)
    return path


def test_class_folder_linked_out_of_the_repository_is_refused(repo: Path, outside: Path) -> None:
    _image(outside / "secrets" / "a.png")
    _image(outside / "secrets" / "b.png")
    (repo / "projects/tiny/data/secrets").symlink_to(outside / "secrets")
    tree = Tree(repo.parent)
    result = tango_here("data", "projects/tiny", cwd=repo)
    refused(
        result,
        f"projects/tiny/data/secrets: a symbolic link out of the repository (to "
        f"{outside / 'secrets'}); data must stay inside it",
    )
    assert [c for c in tree.changes() if not c.startswith("repo/runs")] == []


def test_image_linked_out_of_the_repository_is_refused(repo: Path, outside: Path) -> None:
    target = _image(outside / "private.png")
    link = repo / "projects/tiny/data/circle/zz.png"
    link.symlink_to(target)
    result = tango_here("data", "projects/tiny", cwd=repo)
    refused(
        result,
        f"projects/tiny/data/circle/zz.png: a symbolic link out of the repository "
        f"(to {target}); data must stay inside it",
    )


def test_image_link_loop_is_refused(repo: Path) -> None:
    """issue 10: a symlink loop in data gave a traceback."""
    link = repo / "projects/tiny/data/circle/loop.png"
    link.symlink_to(link)
    result = tango_here("data", "projects/tiny", cwd=repo)
    refused(
        result,
        "projects/tiny/data/circle/loop.png: a broken symbolic link or a link loop; "
        "data must be real files inside the repository",
    )


def test_link_inside_the_repository_is_fine(repo: Path) -> None:
    inside = _image(repo / "shared-images" / "c.png")
    (repo / "projects/tiny/data/circle/linked.png").symlink_to(inside)
    result = tango_here("data", "projects/tiny", cwd=repo)
    assert result.code == 0, result.stderr


def _yolo(root: Path, data_yaml: str) -> Path:
    for split in ("train", "val"):
        _image(root / "images" / split / "a.png")
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text(data_yaml)
    return root


def test_yolo_path_elsewhere_is_refused(repo: Path, outside: Path) -> None:
    """issue 10: `path: /elsewhere` in a YOLO data.yaml was read."""
    _yolo(outside / "yolo", "path: .\ntrain: images/train\nval: images/val\nnames: [a]\n")
    dataset = _yolo(
        repo / "yolo",
        f"path: {outside / 'yolo'}\ntrain: images/train\nval: images/val\nnames: [a]\n",
    )
    result = tango_here("data", "check", str(dataset.relative_to(repo)), cwd=repo)
    assert result.code == 1
    assert result.stdout.splitlines() == [
        f"data.yaml:1:7: path: '{outside / 'yolo'}' leads out of the repository; data must stay "
        "inside it"
    ]


def test_yolo_split_escaping_is_refused(repo: Path) -> None:
    dataset = _yolo(repo / "yolo", "train: ../../../../etc\nval: images/val\nnames: [a]\n")
    result = tango_here("data", "check", "yolo", cwd=repo)
    assert result.code == 1
    assert result.stdout.splitlines() == [
        "data.yaml:1:8: train: '../../../../etc' leads out of the repository; data must stay "
        "inside it"
    ]
    assert dataset.exists()


def test_yolo_label_linked_out_is_refused_without_echoing_it(repo: Path, outside: Path) -> None:
    dataset = _yolo(repo / "yolo", "train: images/train\nval: images/val\nnames: [a]\n")
    secret = outside / "shadow"
    secret.write_text("root:$6$secret:19000:0:99999:7:::\n")
    label = dataset / "labels" / "val" / "a.txt"
    label.unlink()
    label.symlink_to(secret)
    result = tango_here("data", "check", "yolo", cwd=repo)
    assert result.code == 1
    assert result.stdout.splitlines() == [
        "labels/val/a.txt: a symbolic link out of the repository (or a link loop); data must "
        "stay inside it"
    ]
    assert "secret" not in result.stdout + result.stderr


def test_concurrent_synthesis_of_one_folder(tmp_path: Path) -> None:
    """issue 10: two runs generating the same synthetic data at once shared data.partial/."""
    project = make_repo(tmp_path / "repo", per_class=30, extra_targets="")
    root = project.parent.parent
    command = [sys.executable, "-I", "-m", "tango_ci", "data", "synth", "projects/tiny"]
    processes = [
        subprocess.Popen(
            command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outcomes = [(p.wait(timeout=120), p.stderr.read()) for p in processes]
    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
    assert sum("wrote" in err for _, err in outcomes) == 1
    assert sum("up to date" in err for _, err in outcomes) == 2
    assert sorted(p.name for p in (project / "data").iterdir()) == [
        ".tango-synth.json",
        "circle",
        "square",
        "triangle",
    ]
    assert [p.name for p in project.iterdir() if "partial" in p.name] == []
