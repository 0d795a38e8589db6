"""Every backend runs the shared suite (tango_ci.compile.testing)."""

from __future__ import annotations

import importlib.util

import pytest

from tango_ci.compile.testing import BackendTestSuite


class TestOnnxRuntimeFp32(BackendTestSuite):
    engine, precision, tolerance = "onnxruntime", "fp32", 1e-4


class TestOnnxRuntimeInt8(BackendTestSuite):
    # random weights and inputs are the worst case for int8; real models do better
    engine, precision, tolerance, min_cosine = "onnxruntime", "int8", 1.0, 0.95


class TestPyTorchEager(BackendTestSuite):
    engine, precision, tolerance = "pytorch", "fp32", 1e-4


class TestPyTorchTorchScript(BackendTestSuite):
    engine, precision, tolerance = "pytorch", "fp32", 1e-4
    options = {"mode": "torchscript"}


class TestTvmUntuned(BackendTestSuite):
    engine, precision, tolerance = "tvm", "fp32", 1e-4


@pytest.mark.tensorrt
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None,
                    reason="tensorrt is not installed (it needs an NVIDIA GPU; "
                           "pip install 'tango-ci[tensorrt]' there)")
class TestTensorRtFp16(BackendTestSuite):
    engine, precision, tolerance, min_cosine = "tensorrt", "fp16", 5e-2, 0.999
    runner_name = "jetson-orin-nano"
