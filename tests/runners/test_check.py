"""`tango runner check`: a runner file that does not describe this host is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tango_ci", "runner", "check", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )


def test_the_generic_cpu_runner_matches_this_host() -> None:
    result = check(REPO / "runners" / "local-cpu.yaml")
    assert result.returncode == 0, result.stderr
    assert "this host matches" in result.stderr


def test_a_mislabelled_runner_fails_with_what_differs(tmp_path: Path) -> None:
    import onnxruntime
    import torch

    if torch.cuda.is_available():
        import pytest

        pytest.skip("this host has an NVIDIA GPU; the mismatch below would not be one")
    text = (REPO / "runners" / "local-cpu.yaml").read_text()
    text = text.replace(
        "    kind: none", '    kind: nvidia-gpu\n    name: T4\n    compute_capability: "7.5"'
    ).replace(f'version: "{".".join(onnxruntime.__version__.split(".")[:2])}"', 'version: "0.9"')
    path = tmp_path / "local-cpu.yaml"
    path.write_text(text)
    result = check(path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "hardware.accelerator: the file declares nvidia-gpu" in result.stderr
    assert (
        f"engines.onnxruntime: {onnxruntime.__version__} installed, the file says 0.9"
        in result.stderr
    )
    assert (
        "this host does not match the runner file (2 mismatch(es): "
        "hardware.accelerator, engines.onnxruntime)" in result.stderr
    )
