"""TensorRT bundles: the runtime runs an engine with cuda-python buffers (no torch). The CUDA
buffer round trip runs where cuda-python sees a GPU, the engine itself where TensorRT is
installed too; elsewhere they skip with the reason, and a TensorRT bundle is refused in one
line naming its model file."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tango_ci.runtime import Bundle, BundleError
from tango_ci.runtime.engines import CudaMemory, _cudart


def _cuda_devices() -> int:
    try:
        runtime = _cudart()
    except ImportError:
        return 0
    error, count = runtime.cudaGetDeviceCount()
    return int(count) if error == runtime.cudaError_t.cudaSuccess else 0


#: the refusal test reads the package's bundle, a pipeline run
pytestmark = pytest.mark.slow

HAS_CUDA = _cuda_devices() > 0
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
NO_CUDA = "cuda-python sees no CUDA device here (it runs on the device machine)"


def _as_tensorrt(bundle: Path, folder: Path) -> Path:
    """The bundle with its manifest saying tensorrt (the manifest is the trust anchor)."""
    shutil.copytree(bundle, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["engine"] = "tensorrt"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed here")
def test_a_tensorrt_bundle_without_tensorrt_is_refused_naming_the_model(
    bundle: Path, tmp_path: Path
) -> None:
    copy = _as_tensorrt(bundle, tmp_path / "trt")
    with pytest.raises(BundleError, match=r"^model/model\.onnx: its engine's runtime is not"):
        Bundle(copy)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)
def test_cuda_buffers_round_trip_and_grow() -> None:
    memory = CudaMemory()
    try:
        first = None
        for array in (
            np.arange(12, dtype=np.float32).reshape(3, 4),
            np.random.default_rng(0).random((64, 3, 32, 32), dtype=np.float32),  # grows it
        ):
            pointer = memory.buffer("x", array.nbytes)
            assert first is None or memory.buffer("x", 4) == pointer  # reused when it fits
            first = pointer
            memory.upload(pointer, array)
            back = np.empty_like(array)
            memory.download(pointer, back)
            memory.synchronize()
            assert np.array_equal(back, array)
    finally:
        memory.close()
    assert memory.buffers == {}


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.skipif(not (HAS_CUDA and HAS_TENSORRT), reason="needs tensorrt and a CUDA device")
def test_a_tensorrt_engine_answers_as_bench_did(tmp_path: Path) -> None:
    from tango_ci import api
    from tango_ci.bench.accuracy import predict_labels
    from tango_ci.compile import load_artifact
    from tango_ci.data.dataset import load_split
    from tests.pipeline_helpers import make_repo

    target = "  - {name: gpu-trt, runner: gpu-server, engine: tensorrt, precision: fp32}\n"
    project = make_repo(tmp_path / "repo", trials=1, per_class=8, extra_targets=target)
    run = api.run(project, bench_seconds=1, until="bench", targets=["gpu-trt"])
    out = tmp_path / "bundle"
    api.deploy_run(project, "gpu-trt", out, run.id)
    images, _ = load_split(run.stage_dir("data"), "test")
    answers = Bundle(out).answer(list(images))
    bench = predict_labels(load_artifact(run.stage_dir("compile") / "gpu-trt"), images, 1)
    assert [a["class"] for a in answers] == bench.tolist()
