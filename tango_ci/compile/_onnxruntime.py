"""onnxruntime: fp32 with graph optimisations saved to disk, int8 static quantisation by a
:class:`~tango_ci.compile.recipes.Recipe` (the fixed int8 build's, or the one ``engine: auto``
chose on the device), recorded in the manifest with its calibration ranges."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tango_ci.compile._base import ARTIFACT, BaseCompiler, BuildRequest, Predictor
from tango_ci.compile._capabilities import ONNXRUNTIME
from tango_ci.compile.quantisation import FLOAT_OP_TYPES, Quantiser
from tango_ci.compile.recipes import Recipe, SessionRecipe
from tango_ci.rundir import file_sha256, write_json

#: the calibration ranges an int8 artifact was quantised with (with the recipe: exact rebuild)
RANGES = "calibration-ranges.json"


class OnnxRuntimePredictor(Predictor):
    def __init__(
        self,
        model_path: Path,
        threads: int | None,
        providers: list[str],
        session: SessionRecipe | None = None,
    ) -> None:
        from tango_ci.runtime.engines import onnxruntime_session

        session = session or SessionRecipe()
        # the deployment runtime's session: a bundle runs the artifact exactly as bench did
        self.session = onnxruntime_session(
            model_path, threads, providers, session.graph_optimization, session.spinning
        )
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
        recipe: Recipe | None = request.options.get("recipe")
        if precision == "int8":
            source, details = self._quantize(request, recipe)
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
            "session": asdict(recipe.session if recipe else SessionRecipe()),
            **details,
        }
        write_json(out / ARTIFACT, manifest)
        return manifest

    def _quantize(self, request: BuildRequest, recipe: Recipe | None) -> tuple[Path, dict]:
        from tango_ci.exceptions import TangoError

        calibration = request.calibration
        ranges_file = request.options.get("calibration_ranges")
        if ranges_file and recipe is None:
            raise TangoError("recorded calibration ranges need the recipe they were made for")
        if not ranges_file and (calibration is None or not len(calibration)):
            raise TangoError("int8 needs calibration images; none were given")
        quantiser = request.options.get("quantiser") or Quantiser(
            request.onnx_path, request.out_dir / "quantization", calibration
        )
        if recipe is None:  # the fixed int8 build: conservative, whatever the device
            recipe = Recipe(
                calibration=request.target.calibration,
                calibration_images=len(calibration),
                float_nodes=tuple(quantiser.conservative_float_nodes()),
            )
        if not ranges_file and recipe.calibration_images > len(calibration):
            raise TangoError(
                f"the recipe calibrates on {recipe.calibration_images} images; "
                f"only {len(calibration)} were given"
            )
        if ranges_file:
            quantiser.use_ranges(recipe, Path(ranges_file))
        work = request.out_dir / "quantization"
        work.mkdir(parents=True, exist_ok=True)
        quantized = quantiser.quantise(recipe, work / "quantized.onnx")
        ranges = request.out_dir / RANGES
        if quantiser.ranges(recipe).resolve() != ranges.resolve():
            shutil.copyfile(quantiser.ranges(recipe), ranges)
        return quantized, {
            "recipe": recipe.to_json(),
            "calibration_ranges": {"file": RANGES, "sha256": file_sha256(ranges)},
            "quantization": {
                "format": recipe.format.upper() if recipe.format == "qdq" else "QOperator",
                "per_channel": recipe.per_channel,
                "method": recipe.calibration,
                "calibration_images": recipe.calibration_images,
                "activations": recipe.activations,
                "weights": recipe.weights,
                "kept_in_float": list(recipe.float_nodes),
                "float_op_types": list(FLOAT_OP_TYPES),
            },
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
            session_recipe(manifest),
        )


def session_recipe(manifest: dict) -> SessionRecipe:
    """The session options an artifact was chosen with (defaults for older artifacts)."""
    session = manifest.get("session")
    if not isinstance(session, dict):
        return SessionRecipe()
    return Recipe.from_json({"session": session}, "artifact.json session").session
