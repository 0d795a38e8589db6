"""`tango runner probe` describes this host in a file that validates."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from tango_ci import api
from tango_ci.exceptions import TangoError
from tango_ci.spec import load_runner


def test_probe_writes_a_valid_runner_file(spec_repo: Path) -> None:
    out = spec_repo / "runners" / "this-host.yaml"
    _runner, missing, _ = api.probe_runner("this-host", out)
    loaded = load_runner(out)
    assert loaded.name == "this-host"
    assert loaded.hardware.arch == platform.machine()
    assert loaded.hardware.cores >= 1 and loaded.hardware.memory_mb > 256
    engines = {e.name for e in loaded.engines}
    assert {"onnxruntime", "pytorch"} <= engines  # installed with tango-ci
    if loaded.hardware.accelerator.kind == "none":
        assert "tensorrt" in missing and "tensorrt" not in engines
        assert loaded.engine("tvm").target.startswith("llvm -mcpu=")
    assert "tango-this-host" in loaded.labels


def test_probe_refuses_to_overwrite(spec_repo: Path) -> None:
    out = spec_repo / "runners" / "local-cpu.yaml"
    before = out.read_text()
    with pytest.raises(TangoError, match="exists; pass --force"):
        api.probe_runner("local-cpu", out)
    assert out.read_text() == before
