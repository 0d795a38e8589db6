"""onnxruntime: fp32 with graph optimisations saved to disk, int8 static QDQ quantisation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from tango_ci.compile._base import ARTIFACT, BaseCompiler, BuildRequest, Predictor
from tango_ci.compile._capabilities import ONNXRUNTIME
from tango_ci.rundir import file_sha256, write_json

# op types left in float by int8 builds (see _quantize)
_FLOAT_OP_TYPES = ("BatchNormalization",)


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over a numpy batch array."""

    def __init__(self, input_name: str, images: np.ndarray, batch: int) -> None:
        self._batches = iter(
            [{input_name: images[i : i + batch]} for i in range(0, len(images), batch)]
        )

    def get_next(self) -> dict | None:
        return next(self._batches, None)


class OnnxRuntimePredictor(Predictor):
    def __init__(self, model_path: Path, threads: int | None, providers: list[str]) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        available = set(ort.get_available_providers())
        chosen = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(model_path), options, providers=chosen)
        self.input_name = self.session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: batch})


class OnnxRuntimeCompiler(BaseCompiler):
    capabilities = ONNXRUNTIME

    def probe(self, accelerator) -> dict:
        """The execution providers this onnxruntime build offers."""
        import onnxruntime

        return {"execution_providers": list(onnxruntime.get_available_providers())}

    def build(self, request: BuildRequest) -> dict:
        import onnxruntime as ort

        out = request.out_dir
        out.mkdir(parents=True, exist_ok=True)
        precision = request.target.precision
        source = request.onnx_path
        details: dict = {}
        if precision == "int8":
            source, details = self._quantize(request)
        elif precision == "fp16":
            source, details = self._to_fp16(request)
        model_path = out / "model.onnx"
        if precision == "fp16":  # optimised by the GPU provider when loaded on the device
            shutil.copy2(source, model_path)
        else:
            options = ort.SessionOptions()
            # EXTENDED, not ALL: ALL adds layout changes tied to the exact CPU it ran on.
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            options.optimized_model_filepath = str(model_path)
            ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        engine = request.runner.engine("onnxruntime")
        providers = (
            list(engine.execution_providers)
            if engine and engine.execution_providers
            else ["CPUExecutionProvider"]
        )
        manifest = {
            "engine": "onnxruntime",
            "precision": precision,
            "file": model_path.name,
            "sha256": file_sha256(model_path),
            "bytes": model_path.stat().st_size,
            "providers": providers,
            "onnxruntime": ort.__version__,
            **details,
        }
        write_json(out / ARTIFACT, manifest)
        return manifest

    def _quantize(self, request: BuildRequest) -> tuple[Path, dict]:
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quant_pre_process,
            quantize_static,
        )

        if request.calibration is None or not len(request.calibration):
            from tango_ci.exceptions import TangoError

            raise TangoError("int8 needs calibration images; none were given")
        work = request.out_dir / "quantization"
        work.mkdir(exist_ok=True)
        prepared = work / "prepared.onnx"
        quant_pre_process(str(request.onnx_path), str(prepared), skip_symbolic_shape=True)
        quantized = work / "quantized.onnx"
        method = {
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }[request.target.calibration]
        import onnx

        graph = onnx.load(str(prepared), load_external_data=False).graph
        # The first convolution and the classifier stay in float: quantising them cost the
        # example's small network 18% accuracy, against 0.2% without them. U8S8 is kept
        # because x86 CPUs without VNNI run it about twice as fast as S8S8.
        convs = [n.name for n in graph.node if n.op_type == "Conv"]
        heads = [n.name for n in graph.node if n.op_type in ("Gemm", "MatMul")]
        excluded = convs[:1] + heads[-1:]
        # A BatchNormalization that pre-processing could not fold into a convolution (DenseNet's
        # norm -> relu -> conv) stays in float: onnxruntime has no integer kernel for it, so
        # quantising it gains no speed and only rounds its scale. Per-channel mode even looks
        # for that rank-1 scale's channels on axis 1, logs "Axis 1 is out-of-range" for each
        # node and falls back to one scale for all channels (densenet m: same latency, max |Δ|
        # to fp32 0.46 instead of 0.53 with the node in float).
        batch_norms = [n.name for n in graph.node if n.op_type in _FLOAT_OP_TYPES]
        quantize_static(
            str(prepared),
            str(quantized),
            _Calibration(graph.input[0].name, request.calibration, batch=8),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
            nodes_to_exclude=excluded + batch_norms,
        )
        return quantized, {
            "quantization": {
                "format": "QDQ",
                "per_channel": True,
                "method": request.target.calibration,
                "calibration_images": len(request.calibration),
                "activations": "uint8",
                "weights": "int8",
                "kept_in_float": excluded,
                "float_op_types": list(_FLOAT_OP_TYPES),
            }
        }

    def _to_fp16(self, request: BuildRequest) -> tuple[Path, dict]:
        """fp16 weights and compute, fp32 inputs and outputs (for GPU execution providers)."""
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        work = request.out_dir / "fp16"
        work.mkdir(exist_ok=True)
        converted = convert_float_to_float16(onnx.load(str(request.onnx_path)), keep_io_types=True)
        path = work / "fp16.onnx"
        onnx.save(converted, str(path))
        return path, {"fp16": {"keep_io_types": True}}

    def load(self, artifact_dir: Path, threads: int | None = None) -> Predictor:
        manifest = json.loads((artifact_dir / ARTIFACT).read_text())
        return OnnxRuntimePredictor(
            artifact_dir / manifest["file"],
            threads,
            manifest.get("providers", ["CPUExecutionProvider"]),
        )
