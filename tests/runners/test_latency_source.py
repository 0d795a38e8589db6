"""Where a target's latency comes from: measured when this host is the target's runner,
predicted when the runner has a latency model, refused in one line otherwise."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from tango_ci.exceptions import TangoError
from tango_ci.runners.latency_source import (
    MEASURED,
    PREDICTED,
    NoLatencySource,
    latency_source,
)
from tango_ci.spec import load_project
from tests.latency.helpers import write_latency_model
from tests.pipeline_helpers import make_repo

OTHER_ARCH = "x86_64" if platform.machine() == "aarch64" else "aarch64"


def elsewhere(root: Path) -> Path:
    """Make the repository's local-cpu runner another machine (another CPU architecture)."""
    path = root / "runners" / "local-cpu.yaml"
    path.write_text(path.read_text().replace("arch: x86_64", f"arch: {OTHER_ARCH}"))
    return path


def test_this_host_is_measured(tmp_path: Path) -> None:
    spec = load_project(make_repo(tmp_path / "repo", extra_targets=""))
    [target] = spec.targets
    source = latency_source(target, spec.runners[target.runner])
    assert (source.kind, source.runner, source.model) == (MEASURED, "local-cpu", None)


def test_another_runner_is_predicted_from_its_model_or_refused(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "repo", extra_targets="")
    runner_file = elsewhere(tmp_path / "repo")
    spec = load_project(project)
    [target] = spec.targets
    runner = spec.runners[target.runner]
    with pytest.raises(NoLatencySource) as refused:
        latency_source(target, runner)
    message = str(refused.value)
    assert "\n" not in message and message.startswith("target cpu-fp32: runner local-cpu is ")
    assert (
        "onnxruntime fp32" in message and "tango runner profile runners/local-cpu.yaml" in message
    )
    broken = runner_file.parent / "local-cpu" / "latency" / "onnxruntime-fp32.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{}")
    with pytest.raises(TangoError) as unusable:  # a file that is not a model is refused
        latency_source(target, runner)
    assert "\n" not in str(unusable.value) and "onnxruntime-fp32.json" in str(unusable.value)
    model = write_latency_model(runner_file)
    assert model == broken
    source = latency_source(target, runner)
    assert (source.kind, source.model) == (PREDICTED, model)
    assert not source.measured and "latency model" in source.why
