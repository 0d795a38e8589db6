"""onnxruntime artifacts: parity with the ONNX model, reload in a fresh process, refusals."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tango_ci.compile import BuildRequest, check_request, get_compiler, load_artifact
from tango_ci.exceptions import UnsupportedRequestError
from tango_ci.export import export_onnx
from tango_ci.models import build_model
from tango_ci.spec import TargetSpec, load_runner
from tests.conftest import REPO

RUNNER = load_runner(REPO / "runners" / "local-cpu.yaml")


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model("resnet", "xs", 3).eval()
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(model, path, (1, 3, 16, 16))
    return path, model


def _build(onnx_path: Path, out: Path, precision: str, calibration=None) -> dict:
    target = TargetSpec(name="t", runner="local-cpu", engine="onnxruntime", precision=precision)
    return get_compiler("onnxruntime").build(
        BuildRequest(
            onnx_path=onnx_path, out_dir=out, target=target, runner=RUNNER, calibration=calibration
        )
    )


def test_fp32_matches_pytorch_and_reloads_in_a_fresh_process(onnx_model, tmp_path) -> None:
    path, model = onnx_model
    manifest = _build(path, tmp_path / "fp32", "fp32")
    assert manifest["bytes"] == (tmp_path / "fp32" / "model.onnx").stat().st_size
    batch = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(batch)).numpy()
    here = load_artifact(tmp_path / "fp32", threads=1).run(batch)[0]
    assert np.abs(here - expected).max() < 1e-4
    np.save(tmp_path / "batch.npy", batch)
    code = (
        "import sys, numpy as np; from pathlib import Path; "
        "from tango_ci.compile import load_artifact; "
        "out = load_artifact(Path(sys.argv[1])).run(np.load(sys.argv[2]))[0]; "
        "np.save(sys.argv[3], out)"
    )
    subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(tmp_path / "fp32"),
            str(tmp_path / "batch.npy"),
            str(tmp_path / "out.npy"),
        ],
        check=True,
    )
    assert np.abs(np.load(tmp_path / "out.npy") - here).max() < 1e-6


def test_int8_is_quantized_and_close(onnx_model, tmp_path) -> None:
    path, _model = onnx_model
    rng = np.random.default_rng(1)
    calibration = rng.standard_normal((16, 3, 16, 16)).astype(np.float32)
    manifest = _build(path, tmp_path / "int8", "int8", calibration)
    assert manifest["quantization"]["calibration_images"] == 16
    fp32 = load_artifact(_build_dir(path, tmp_path)).run(calibration)[0]
    int8 = load_artifact(tmp_path / "int8").run(calibration)[0]
    cosine = (fp32 * int8).sum() / np.linalg.norm(fp32) / np.linalg.norm(int8)
    assert 0.9 < cosine < 1.0  # close, but really quantised
    artifact = json.loads((tmp_path / "int8" / "artifact.json").read_text())
    assert artifact["precision"] == "int8"


def test_int8_densenet_keeps_batch_norm_in_float_without_warnings(tmp_path, caplog) -> None:
    # DenseNet's norm -> relu -> conv leaves BatchNormalization nodes no pass can fold; asked
    # to quantise them per channel, onnxruntime logged "Axis 1 is out-of-range" for each
    import onnx

    torch.manual_seed(0)
    model = build_model("densenet", "xs", 3).eval()
    for norm in model.modules():  # trained-looking statistics (fresh ones are 0s and 1s)
        if isinstance(norm, torch.nn.BatchNorm2d):
            norm.weight.data.uniform_(0.5, 1.5)
            norm.bias.data.normal_(0, 0.3)
            norm.running_mean.normal_(0, 0.3)
            norm.running_var.uniform_(0.5, 1.5)
    export_onnx(model, tmp_path / "model.onnx", (1, 3, 16, 16))
    calibration = np.random.default_rng(1).standard_normal((16, 3, 16, 16)).astype(np.float32)
    with caplog.at_level(logging.WARNING):
        manifest = _build(tmp_path / "model.onnx", tmp_path / "int8", "int8", calibration)
    assert [r.getMessage() for r in caplog.records if "out-of-range" in r.getMessage()] == []
    assert manifest["quantization"]["float_op_types"] == ["BatchNormalization"]
    graph = onnx.load(str(tmp_path / "int8" / "quantization" / "quantized.onnx")).graph
    produced_by = {output: node.op_type for node in graph.node for output in node.output}
    norms = [node for node in graph.node if node.op_type == "BatchNormalization"]
    assert norms and all(
        produced_by.get(name) != "DequantizeLinear" for node in norms for name in node.input[1:]
    )
    assert any(node.op_type == "QuantizeLinear" for node in graph.node)  # still int8
    with torch.no_grad():
        expected = model(torch.from_numpy(calibration)).numpy()
    int8 = load_artifact(tmp_path / "int8", threads=1).run(calibration)[0]
    cosine = (expected * int8).sum() / np.linalg.norm(expected) / np.linalg.norm(int8)
    assert cosine > 0.95


def _build_dir(path: Path, tmp_path: Path) -> Path:
    _build(path, tmp_path / "ref", "fp32")
    return tmp_path / "ref"


@pytest.mark.parametrize(
    "engine, precision, runner, expected",
    [
        (
            "tensorrt",
            "fp16",
            "local-cpu",
            "tensorrt cannot build target 't' for runner 'local-cpu': tensorrt runs on accelerator "
            "kinds nvidia-gpu, not on 'none'",
        ),
        (
            "onnxruntime",
            "fp16",
            "local-cpu",
            "onnxruntime cannot build target 't' for runner 'local-cpu': onnxruntime offers fp32, "
            "int8 on a CPU, not fp16",
        ),
        (
            "pytorch",
            "int8",
            "local-cpu",
            "pytorch cannot build target 't' for runner 'local-cpu': pytorch offers fp32 on a CPU, "
            "not int8",
        ),
    ],
)
def test_unsupported_requests_are_refused_before_work(engine, precision, runner, expected):
    target = TargetSpec(name="t", runner=runner, engine=engine, precision=precision)
    with pytest.raises(UnsupportedRequestError) as info:
        check_request(target, load_runner(REPO / "runners" / f"{runner}.yaml"))
    assert info.value.message == expected


def test_an_engine_the_runner_lacks_is_refused(tmp_path) -> None:
    text = (REPO / "runners" / "jetson-orin-nano.yaml").read_text()
    only_trt = text.split("engines:")[0] + "engines:\n  - name: tensorrt\nprecisions: [fp16]\n"
    (tmp_path / "runners").mkdir()
    path = tmp_path / "runners" / "jetson-orin-nano.yaml"
    path.write_text(only_trt)
    target = TargetSpec(name="t", runner="jetson-orin-nano", engine="onnxruntime")
    with pytest.raises(UnsupportedRequestError) as info:
        check_request(target, load_runner(path))
    assert info.value.message == (
        "onnxruntime cannot build target 't' for runner "
        "'jetson-orin-nano': the runner does not have it installed "
        "(it has tensorrt)"
    )


def test_tvm_int8_is_refused() -> None:
    target = TargetSpec(name="t", runner="local-cpu", engine="tvm", precision="int8")
    with pytest.raises(UnsupportedRequestError, match="tvm offers fp32 on a CPU, not int8"):
        check_request(target, RUNNER)
