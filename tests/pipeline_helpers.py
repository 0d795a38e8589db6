"""A tiny classification project and repository the pipeline tests share."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import REPO, git

TINY = """\
name: tiny
task: classification
data:
  path: data
  format: imagefolder
  image_size: 32
  synth: {{images_per_class: {per_class}, size: 32, seed: 0}}
search:
  families: [resnet]
  levels: [xs]
  trials: {trials}
  epochs: {search_epochs}
train:
  epochs: {epochs}
  batch: 16
  patience: 50
targets:
  - name: cpu-fp32
    runner: local-cpu
    engine: onnxruntime
    precision: fp32
    constraints: {{latency_ms: {latency}, model_size_mb: 50}}
{extra_targets}"""

INT8_TARGET = """\
  - name: cpu-int8
    runner: local-cpu
    engine: onnxruntime
    precision: int8
    calibration: minmax
    constraints: {max_accuracy_drop: 1.0}
"""


def template_repo(root: Path) -> Path:
    """A git repository with runners/ and schemas/; returns its (empty) projects/tiny."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    shutil.copytree(REPO / "runners", root / "runners")
    shutil.copytree(REPO / "schemas", root / "schemas")
    project = root / "projects" / "tiny"
    project.mkdir(parents=True)
    return project


def make_repo(
    root: Path,
    *,
    per_class: int = 12,
    trials: int = 2,
    search_epochs: int = 1,
    epochs: int = 2,
    latency: float = 1000,
    extra_targets: str = INT8_TARGET,
) -> Path:
    """A git repository with runners/, schemas/ and projects/tiny; returns the project folder."""
    project = template_repo(root)
    (project / "project.yaml").write_text(
        TINY.format(
            per_class=per_class,
            trials=trials,
            search_epochs=search_epochs,
            epochs=epochs,
            latency=latency,
            extra_targets=extra_targets,
        )
    )
    return project


def copy_template(work: Path) -> None:
    """The template's files a fresh clone of a forge needs: runners, schemas, DVC set-up."""
    for folder in ("runners", "schemas", ".dvc"):
        shutil.copytree(
            REPO / folder,
            work / folder,
            ignore=shutil.ignore_patterns("tmp", "cache", "config.local"),
        )
    for name in (".gitignore", ".dvcignore"):
        shutil.copy2(REPO / name, work / name)
