"""A tiny supernet project in a temporary repository, for the supernet tests."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import REPO
from tests.pipeline_helpers import template_repo

SUPERNET = """\
name: tiny
task: classification
data:
  path: data
  format: imagefolder
  image_size: 16
  synth: {{images_per_class: {per_class}, size: 16, seed: 0}}
search:
  strategy: supernet
  families: [{family}]
  supernet: {{resolutions: [16, 12], random_subnets: 1}}
train:
  epochs: {epochs}
  batch: 16
  patience: 50
  runner: local-cpu
specialise:
  population: 4
  generations: 1
  time_budget_s: 20
targets:
  - name: roomy
    runner: {runner}
    engine: onnxruntime
    precision: fp32
    constraints: {{latency_ms: 1000, max_accuracy_drop: 1.0}}
  - name: small
    runner: local-cpu
    engine: onnxruntime
    precision: int8
    constraints: {{latency_ms: 1000, model_size_mb: {small_mb}, max_accuracy_drop: 1.0}}
"""


def make_supernet_repo(
    root: Path,
    *,
    per_class: int = 10,
    epochs: int = 2,
    family: str = "ofa-resnet",
    runner: str = "local-cpu",
    small_mb: float = 0.2,
) -> Path:
    """A git repository with runners/, schemas/ and a supernet projects/tiny; returns the
    project folder. Target ``small`` fits only small subnets by its model size budget."""
    project = template_repo(root)
    (project / "project.yaml").write_text(
        SUPERNET.format(
            per_class=per_class, epochs=epochs, family=family, runner=runner, small_mb=small_mb
        )
    )
    return project


def foreign_runner(root: Path, name: str = "arm-board") -> None:
    """A runner file this host does not match (an aarch64 board)."""
    text = (REPO / "runners" / "local-cpu.yaml").read_text()
    text = text.replace("name: local-cpu", f"name: {name}").replace("arch: x86_64", "arch: aarch64")
    (root / "runners" / f"{name}.yaml").write_text(text)


#: a target on the runner :func:`foreign_runner` writes (not this host)
FOREIGN_TARGET = """\
  - name: pi
    runner: arm-board
    engine: onnxruntime
    precision: fp32
    constraints: {latency_ms: 1000}
"""
