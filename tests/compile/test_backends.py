"""Every backend runs the shared suite (tango_ci.compile.testing)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tango_ci.compile.testing import BackendTestSuite


class TestOnnxRuntimeFp32(BackendTestSuite):
    engine, precision, tolerance = "onnxruntime", "fp32", 1e-4


class TestOnnxRuntimeInt8(BackendTestSuite):
    # random weights and inputs are the worst case for int8; real models do better
    engine, precision, tolerance, min_cosine = "onnxruntime", "int8", 1.0, 0.95


class TestPyTorchEager(BackendTestSuite):
    engine, precision, tolerance = "pytorch", "fp32", 1e-4

    @pytest.mark.parametrize("failure", ["no compiler", "fails when run"])
    def test_auto_times_each_mode_and_skips_compile_where_it_cannot_run(
        self, model_dir, runner, tmp_path, monkeypatch, failure
    ) -> None:
        """engine: auto keeps the fastest mode timed here; torch.compile, which this device
        cannot build without a C++ compiler (or whose compiler fails at the first call), is
        skipped with the reason in one line, not a failure of the target."""
        from types import SimpleNamespace

        import torch

        from tango_ci.progress import Reporter
        from tango_ci.spec import TargetSpec
        from tango_ci.stages.compile_auto import build_fastest_mode

        if failure == "no compiler":
            monkeypatch.setenv("CXX", "no-such-cxx")
            reason = (
                "pytorch mode compile needs a C++ compiler for torch.compile on a CPU; "
                "CXX=no-such-cxx is not on PATH"
            )
        else:
            monkeypatch.setenv("CXX", "python3")  # on PATH, so the mode is built

            class Failing(torch.nn.Module):  # what Inductor raises when g++ fails
                def forward(self, x):
                    raise RuntimeError("C++ compile error\n" + "g++ said ...\n" * 500)

            def compiled(module, **options):
                return Failing()

            monkeypatch.setattr(torch, "compile", compiled)
            reason = "RuntimeError: C++ compile error"
        ctx = SimpleNamespace(
            spec=SimpleNamespace(data=SimpleNamespace(image_size=self.image_size)),
            reporter=Reporter(),
        )
        candidate = TargetSpec(name="t", runner=runner.name, engine="pytorch")
        built = build_fastest_mode(ctx, candidate, runner, tmp_path / "out", model_dir)
        modes = set(built["modes_timed_ms"])
        assert modes == set(built["modes_ready_s"]) == {"eager", "torchscript"}
        assert built["modes_skipped"] == {"compile": reason}
        assert built["mode"] == min(built["modes_timed_ms"], key=built["modes_timed_ms"].get)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


class TestPyTorchTorchScript(BackendTestSuite):
    engine, precision, tolerance = "pytorch", "fp32", 1e-4
    options: ClassVar[dict[str, Any]] = {"mode": "torchscript"}


def _no_compiler() -> str | None:
    from tango_ci.compile._pytorch import compile_refusal

    return compile_refusal()


@pytest.mark.slow
@pytest.mark.skipif(_no_compiler() is not None, reason=str(_no_compiler()))
class TestPyTorchCompile(BackendTestSuite):
    """torch.compile (Inductor's C++ on a CPU): compiled when loaded, in every process."""

    engine, precision, tolerance = "pytorch", "fp32", 1e-4
    options: ClassVar[dict[str, Any]] = {"mode": "compile"}

    @pytest.fixture(scope="class", autouse=True)
    def compiles_here(self) -> None:
        """A compiler on PATH may still fail Inductor (no OpenMP, say): then it is skipped,
        with what failed, as auto skips the mode."""
        import torch

        try:
            torch.compile(lambda x: x * 2 + 1)(torch.ones(4))
        except Exception as exc:
            pytest.skip(f"torch.compile does not work here: {type(exc).__name__}: {exc}"[:300])


def test_torch_compile_without_a_cpp_compiler_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tango_ci.compile._pytorch import compile_refusal

    monkeypatch.setenv("CXX", "no-such-cxx -O2")
    assert compile_refusal() == (
        "pytorch mode compile needs a C++ compiler for torch.compile on a CPU; "
        "CXX=no-such-cxx -O2 is not on PATH"
    )
    assert compile_refusal("cuda") is None  # Triton, not a C++ compiler
    monkeypatch.delenv("CXX")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert compile_refusal().endswith("; no g++, c++ or clang++ on PATH")


class TestTvmUntuned(BackendTestSuite):
    engine, precision, tolerance = "tvm", "fp32", 1e-4

    def test_without_a_cpp_compiler_the_build_is_refused_in_one_line(
        self, model_dir, runner, tmp_path, monkeypatch
    ) -> None:
        """TVM links its module with CXX (else g++): a host without one raised
        FileNotFoundError, which stopped engine: auto instead of dropping the TVM candidate."""
        from tango_ci.compile import BuildRequest, get_compiler
        from tango_ci.exceptions import TangoError
        from tango_ci.spec import TargetSpec

        monkeypatch.setenv("CXX", "no-such-cxx")
        request = BuildRequest(
            onnx_path=model_dir / "model.onnx",
            out_dir=tmp_path / "out",
            target=TargetSpec(name="t", runner=runner.name, engine="tvm", batch=self.batch),
            runner=runner,
        )
        with pytest.raises(TangoError) as caught:
            get_compiler("tvm").build(request)
        assert caught.value.message == (
            "TVM links its module with a C++ compiler and 'no-such-cxx' is not on PATH "
            "(install g++, or set CXX to one)"
        )


@pytest.mark.tensorrt
@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is None,
    reason="tensorrt is not installed (it needs an NVIDIA GPU; "
    "pip install 'tango-ci[tensorrt]' there)",
)
class TestTensorRtFp16(BackendTestSuite):
    engine, precision, tolerance, min_cosine = "tensorrt", "fp16", 5e-2, 0.999
    runner_name = "jetson-orin-nano"


@pytest.mark.slow
class TestTvmTuned(BackendTestSuite):
    """MetaSchedule with a tiny budget; the second build of the same model reuses it."""

    engine, precision, tolerance = "tvm", "fp32", 1e-4
    options: ClassVar[dict[str, Any]] = {"tuning_trials": 4}

    def test_second_build_reuses_the_tuning_database(
        self, artifact, model_dir, runner, tmp_path
    ) -> None:
        import time

        from tango_ci.compile import BuildRequest, get_compiler
        from tango_ci.spec import TargetSpec

        first = artifact[1]["tuning"]
        assert first["reused"] is False and first["trials"] == 4
        database = Path(first["database"])
        began = time.perf_counter()
        again = get_compiler("tvm").build(
            BuildRequest(
                onnx_path=model_dir / "model.onnx",
                out_dir=tmp_path / "again",
                target=TargetSpec(name="suite", runner=runner.name, engine="tvm", batch=self.batch),
                runner=runner,
                options={"tuning_trials": 4, "tuning_cache": database.parent},
            )
        )
        assert again["tuning"]["reused"] is True
        assert again["tuning"]["database"] == str(database)
        assert time.perf_counter() - began < 60


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _ort_cuda_available() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


_NO_CUDA = "no CUDA GPU on this host (scripts/gpu-check.sh runs these on a GPU machine)"


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason=_NO_CUDA)
class TestPyTorchCudaFp32(BackendTestSuite):
    # TF32 matmuls on Ampere and later: a little looser than on the CPU
    engine, precision, tolerance = "pytorch", "fp32", 1e-2
    runner_name = "gpu-server"


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason=_NO_CUDA)
class TestPyTorchCudaTorchScript(BackendTestSuite):
    engine, precision, tolerance = "pytorch", "fp32", 1e-2
    options: ClassVar[dict[str, Any]] = {"mode": "torchscript"}
    runner_name = "gpu-server"


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason=_NO_CUDA)
class TestPyTorchCudaFp16(BackendTestSuite):
    engine, precision, tolerance, min_cosine = "pytorch", "fp16", 5e-2, 0.999
    runner_name = "gpu-server"


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason=_NO_CUDA)
class TestPyTorchCudaBf16(BackendTestSuite):
    engine, precision, tolerance, min_cosine = "pytorch", "bf16", 0.25, 0.99
    runner_name = "gpu-server"


@pytest.mark.gpu
@pytest.mark.skipif(
    not _ort_cuda_available(),
    reason="onnxruntime has no CUDAExecutionProvider here (onnxruntime-gpu on a CUDA host has)",
)
class TestOnnxRuntimeCudaFp16(BackendTestSuite):
    engine, precision, tolerance, min_cosine = "onnxruntime", "fp16", 5e-2, 0.999
    runner_name = "gpu-server"
