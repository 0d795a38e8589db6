"""NVIDIA TensorRT: engines built with the TensorRT Python API (fp32, fp16, int8 with an
entropy calibrator on the calibration images), with a reusable timing cache. The engine's
manifest records the TensorRT version and the GPU it was built on: engines do not move between
GPU models or TensorRT versions.

Device memory and streams come from PyTorch's CUDA allocator, so no extra CUDA binding is
needed. Only runs where an NVIDIA GPU and ``tensorrt`` are (``pip install 'tango-ci[tensorrt]'``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tango_ci.compile._base import ARTIFACT, BaseCompiler, BuildRequest, Predictor
from tango_ci.compile._capabilities import TENSORRT
from tango_ci.exceptions import MissingDependencyError, TangoError
from tango_ci.rundir import file_sha256, write_json

ENGINE_FILE = "model.engine"
TIMING_CACHE = "timing.cache"
MAX_BATCH_FACTOR = 4  # the optimisation profile admits batches up to 4x the target's


def _import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise MissingDependencyError(
            feature="the tensorrt backend", package="tensorrt", hint=TENSORRT.install_hint
        ) from None
    import torch

    if not torch.cuda.is_available():
        raise TangoError("the tensorrt backend needs an NVIDIA GPU with CUDA; none is visible")
    return tensorrt


def _entropy_calibrator(trt, images: np.ndarray, batch: int, cache_path: Path):
    import torch

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.images, self.batch, self.index = images, batch, 0
            self.device_batch = torch.empty(
                (batch, *images.shape[1:]), dtype=torch.float32, device="cuda"
            )

        def get_batch_size(self) -> int:
            return self.batch

        def get_batch(self, names):
            if self.index + self.batch > len(self.images):
                return None
            chunk = self.images[self.index : self.index + self.batch]
            self.device_batch.copy_(torch.from_numpy(np.ascontiguousarray(chunk)))
            self.index += self.batch
            return [int(self.device_batch.data_ptr())]

        def read_calibration_cache(self):
            return cache_path.read_bytes() if cache_path.exists() else None

        def write_calibration_cache(self, cache) -> None:
            cache_path.write_bytes(bytes(cache))

    return EntropyCalibrator()


class TensorRtPredictor(Predictor):
    def __init__(self, engine_path: Path) -> None:
        import torch

        trt = _import_tensorrt()
        self._torch = torch
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(engine_path.read_bytes())
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        torch = self._torch
        device_input = torch.from_numpy(np.ascontiguousarray(batch)).cuda()
        self.context.set_input_shape(self.inputs[0], tuple(batch.shape))
        self.context.set_tensor_address(self.inputs[0], int(device_input.data_ptr()))
        results = []
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            tensor = torch.empty(shape, dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(name, int(tensor.data_ptr()))
            results.append(tensor)
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise TangoError("TensorRT execution failed")
        stream.synchronize()
        return [r.cpu().numpy() for r in results]


class TensorRtCompiler(BaseCompiler):
    capabilities = TENSORRT

    def build(self, request: BuildRequest) -> dict:
        trt = _import_tensorrt()
        import torch

        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(request.onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise TangoError(f"TensorRT cannot parse {request.onnx_path.name}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
        tensor = network.get_input(0)
        batch = request.target.batch
        shape = tuple(tensor.shape)[1:]
        profile = builder.create_optimization_profile()
        profile.set_shape(
            tensor.name, (1, *shape), (batch, *shape), (batch * MAX_BATCH_FACTOR, *shape)
        )
        config.add_optimization_profile(profile)
        out = request.out_dir
        out.mkdir(parents=True, exist_ok=True)
        precision = request.target.precision
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        elif precision == "int8":
            if request.calibration is None:
                raise TangoError("int8 needs calibration images; none were given")
            config.set_flag(trt.BuilderFlag.INT8)
            config.set_calibration_profile(profile)
            config.int8_calibrator = _entropy_calibrator(
                trt, request.calibration, batch, out / "calibration.cache"
            )
        cache_path = Path(request.options.get("timing_cache") or out / TIMING_CACHE)
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.exists() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise TangoError("TensorRT could not build an engine (see its log above)")
        engine_path = out / ENGINE_FILE
        engine_path.write_bytes(bytes(serialized))
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
        manifest = {
            "engine": "tensorrt",
            "precision": precision,
            "file": ENGINE_FILE,
            "sha256": file_sha256(engine_path),
            "bytes": engine_path.stat().st_size,
            "tensorrt": trt.__version__,
            "gpu": torch.cuda.get_device_name(0),
            "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
            "batch_range": [1, batch, batch * MAX_BATCH_FACTOR],
            "calibration": "entropy" if precision == "int8" else None,
            "timing_cache": str(cache_path),
        }
        write_json(out / ARTIFACT, manifest)
        return manifest

    def load(self, artifact_dir: Path, threads: int | None = None) -> Predictor:
        manifest = json.loads((artifact_dir / ARTIFACT).read_text())
        return TensorRtPredictor(artifact_dir / manifest["file"])
