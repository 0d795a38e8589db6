"""A compile folder may come from another job or machine: its artifact.json is checked
against its schema before its ``file`` is hashed or loaded, by bench as by deploy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tango_ci.compile import BuildRequest, get_compiler, load_artifact
from tango_ci.exceptions import TangoError
from tango_ci.export import export_onnx
from tango_ci.models import build_model
from tango_ci.spec import TargetSpec, load_runner
from tests.conftest import REPO


def test_an_artifact_naming_a_file_outside_its_folder_is_not_loaded(tmp_path: Path) -> None:
    export_onnx(build_model("resnet", "xs", 3).eval(), tmp_path / "model.onnx", (1, 3, 16, 16))
    runner = load_runner(REPO / "runners" / "local-cpu.yaml")
    artifact = tmp_path / "run" / "compile" / "cpu"
    get_compiler("onnxruntime").build(
        BuildRequest(
            onnx_path=tmp_path / "model.onnx",
            out_dir=artifact,
            target=TargetSpec(name="t", runner=runner.name, engine="onnxruntime"),
            runner=runner,
        )
    )
    load_artifact(artifact).close()  # as built: fine
    outside = tmp_path / "run" / "elsewhere.onnx"
    shutil.copy2(tmp_path / "model.onnx", outside)  # what a hostile record points at
    record = json.loads((artifact / "artifact.json").read_text())
    (artifact / "artifact.json").write_text(json.dumps(record | {"file": "../../elsewhere.onnx"}))
    with pytest.raises(TangoError) as caught:
        load_artifact(artifact)
    assert "artifact.json: at file:" in caught.value.message
    assert "\n" not in caught.value.message
