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


def _run_copy(measured, tmp_path: Path) -> tuple[Path, str, Path]:
    """A copy of the measured repository: its project folder, run id and fp32 artifact."""
    project, run = measured
    repo = project.parents[1]
    shutil.copytree(repo, tmp_path / "repo", symlinks=True)
    copy = tmp_path / "repo" / project.relative_to(repo)
    artifact = tmp_path / "repo" / run.root.relative_to(repo) / "compile" / "cpu-fp32"
    return copy, run.id, artifact


def test_an_artifact_naming_a_file_outside_its_folder_writes_nothing_outside(
    measured, tmp_path: Path
) -> None:
    """A run folder from elsewhere: ``file: ../../escape.onnx`` was read beside the run's
    compile folder and copied beside the bundle, before the bundle failed to load."""
    from tango_ci import api

    project, run_id, artifact = _run_copy(measured, tmp_path)
    shutil.copyfile(artifact / "model.onnx", artifact.parents[1] / "escape.onnx")
    built = json.loads((artifact / "artifact.json").read_text())
    (artifact / "artifact.json").write_text(json.dumps(built | {"file": "../../escape.onnx"}))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(TangoError, match=r"artifact.json: at file: '\.\./\.\./escape.onnx'"):
        api.deploy_run(project, "cpu-fp32", out / "bundle", run_id)
    assert list(out.iterdir()) == []


def test_an_artifact_the_runtime_cannot_load_is_one_tango_error(measured, tmp_path) -> None:
    """Its hash matching its artifact.json, a damaged model failed in the bundle's first load
    with the runtime's BundleError, which the CLI printed as a traceback."""
    from tango_ci import api
    from tango_ci.rundir import file_sha256

    project, run_id, artifact = _run_copy(measured, tmp_path)
    (artifact / "model.onnx").write_bytes(b"not a network")
    built = json.loads((artifact / "artifact.json").read_text())
    built |= {"sha256": file_sha256(artifact / "model.onnx"), "bytes": 13}
    (artifact / "artifact.json").write_text(json.dumps(built))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(
        TangoError, match=r"^the bundle does not load: model/model\.onnx: the engine"
    ):
        api.deploy_run(project, "cpu-fp32", out / "bundle", run_id)
    assert list(out.iterdir()) == []
