"""Hostile input to the operation side that needs a real bundle (the rest is in
tests/hostile/test_operation.py): refused in one line; nothing is run or written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tango_ci.exceptions import TangoError
from tango_ci.monitor import monitor
from tango_ci.runtime import Bundle, BundleError
from tests.hostile.test_operation import GOOD

pytestmark = pytest.mark.slow


def test_a_window_of_the_wrong_width_is_refused(bundle: Path, tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    record = GOOD | {
        "model_version": Bundle(bundle).version,
        "outputs": {"probabilities": [1.0] * 9},
    }
    path.write_text("\n".join(json.dumps(record) for _ in range(30)) + "\n")
    with pytest.raises(TangoError, match="record 1 of the window: not 3 class probabilities"):
        monitor(path, bundle, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_manifest_whose_model_is_not_listed_is_refused(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    (tmp_path / "evil.onnx").write_bytes(b"not checked")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["model"] = "../evil.onnx"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="'model' must name one of the listed files"):
        Bundle(copy)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"engine": "tvm", "device": "opencl; rm -rf /"}, "TVM device 'opencl; rm -rf /' is not"),
        ({"engine": "tvm", "device": ["cuda"]}, "TVM device"),
        ({"engine": "onnxruntime-but-not"}, "engine 'onnxruntime-but-not' is not served"),
    ],
)
def test_an_engine_or_device_the_runtime_does_not_know_is_refused(
    bundle: Path, tmp_path: Path, changes: dict, message: str
) -> None:
    """The manifest chooses the engine runner: only the three it knows, TVM on cpu or cuda."""
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text()) | changes
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=f"^manifest.json: {message}"):
        Bundle(copy)
