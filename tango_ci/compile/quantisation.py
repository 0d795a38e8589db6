"""onnxruntime static quantisation of one network by many recipes, calibrated once per method.

The network is pre-processed once (shape inference, BatchNorm folded into convolutions); the
tensor ranges of each calibration (method, image count) are computed once and kept as JSON,
so trying another format, type or float fallback costs a quantisation pass, not a calibration.
The ranges file goes into the artifact: with it and the recipe a rebuild is byte-identical.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from pathlib import Path

import numpy as np

from tango_ci.compile.recipes import Recipe
from tango_ci.exceptions import TangoError

#: op types left in float by every recipe: onnxruntime has no integer kernel for a
#: BatchNormalization that pre-processing could not fold (DenseNet's norm -> relu -> conv), so
#: quantising it gains nothing and, per channel, logs "Axis 1 is out-of-range" per node
FLOAT_OP_TYPES = ("BatchNormalization",)
#: the op types whose float fallback changes speed and accuracy (what the search tries)
WEIGHTED_OP_TYPES = ("Conv", "ConvTranspose", "Gemm", "MatMul")
MAX_RANGES_BYTES = 32 * 2**20
CALIBRATION_BATCH = 8


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over a numpy batch array."""

    def __init__(self, input_name: str, images: np.ndarray, batch: int) -> None:
        self._batches = iter(
            [{input_name: images[i : i + batch]} for i in range(0, len(images), batch)]
        )

    def get_next(self) -> dict | None:
        return next(self._batches, None)


def _method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    return {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[name]


def _type(name: str):
    from onnxruntime.quantization import QuantType

    return {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}[name]


class Quantiser:
    """Quantises the network at ``onnx_path`` by any :class:`Recipe`, working in ``work``."""

    def __init__(self, onnx_path: Path, work: Path, calibration: np.ndarray | None) -> None:
        import onnx
        from onnxruntime.quantization import quant_pre_process

        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.calibration = calibration
        self.prepared = self.work / "prepared.onnx"
        quant_pre_process(str(onnx_path), str(self.prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(self.prepared), load_external_data=False).graph
        self.input_name = graph.input[0].name
        self.nodes = [(n.name, n.op_type) for n in graph.node]
        self._ranges: dict[tuple[str, int], Path] = {}

    @property
    def weighted_nodes(self) -> list[str]:
        """Convolutions and matrix products in graph order: the layers a fallback can keep."""
        return [name for name, op in self.nodes if op in WEIGHTED_OP_TYPES]

    def conservative_float_nodes(self) -> list[str]:
        """The first convolution and the classifier: the fixed int8 build's float layers
        (quantising them cost the 32-px example 18% accuracy, against 0.2% without them)."""
        convs = [name for name, op in self.nodes if op == "Conv"]
        heads = [name for name, op in self.nodes if op in ("Gemm", "MatMul")]
        return convs[:1] + heads[-1:]

    def use_ranges(self, recipe: Recipe, path: Path) -> None:
        """Quantise ``recipe``'s calibration with the recorded ranges at ``path``."""
        self._ranges[(recipe.calibration, recipe.calibration_images)] = check_ranges(path)

    def ranges(self, recipe: Recipe) -> Path:
        """The ranges file of the recipe's calibration, computed on first use."""
        key = (recipe.calibration, recipe.calibration_images)
        if key not in self._ranges:
            if self.calibration is None or not len(self.calibration):
                raise TangoError("int8 needs calibration images; none were given")
            from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

            path = self.work / f"ranges-{key[0]}-{key[1]}.json"
            augmented = self.work / f"augmented-{key[0]}.onnx"
            calibrator = create_calibrator(
                self.prepared,
                [],  # every float tensor, as quantize_static does
                augmented_model_path=str(augmented),
                calibrate_method=_method(key[0]),
            )
            images = self.calibration[: key[1]]
            # the histogram calibrators print their progress; the stage logs its own. One batch
            # per call: each call folds its batch into the ranges (histograms) and drops the
            # activations, where one call over every image holds them all (densenet121 at 224
            # px, 128 images: over 22 GB)
            with contextlib.redirect_stdout(io.StringIO()):
                for start in range(0, len(images), CALIBRATION_BATCH):
                    batch = images[start : start + CALIBRATION_BATCH]
                    calibrator.collect_data(_Calibration(self.input_name, batch, len(batch)))
                save_tensors_data(calibrator.compute_data(), path)
            augmented.unlink(missing_ok=True)
            self._ranges[key] = path
        return self._ranges[key]

    def quantise(self, recipe: Recipe, out: Path) -> Path:
        """Write the network quantised by ``recipe`` to ``out``."""
        from onnxruntime.quantization import QuantFormat, quantize_static

        ranges = self.ranges(recipe)
        missing = sorted(set(recipe.float_nodes) - {name for name, _ in self.nodes})
        if missing:
            raise TangoError(f"recipe keeps node '{missing[0]}' in float, but the network has none")
        float_types = [name for name, op in self.nodes if op in FLOAT_OP_TYPES]
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # quantize_static warns per call about things we did
        try:
            quantize_static(
                str(self.prepared),
                str(out),
                None,
                quant_format=QuantFormat.QDQ if recipe.format == "qdq" else QuantFormat.QOperator,
                per_channel=recipe.per_channel,
                reduce_range=recipe.reduce_range,
                activation_type=_type(recipe.activations),
                weight_type=_type(recipe.weights),
                calibrate_method=_method(recipe.calibration),
                nodes_to_exclude=[*recipe.float_nodes, *float_types],
                calibration_cache_path=str(ranges),
            )
        finally:
            root.setLevel(level)
        return out


def check_ranges(path: Path) -> Path:
    """Refuse a recorded ranges file that is not a small JSON object of finite numbers."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        raise TangoError(f"{path}: calibration ranges are not a regular file")
    if path.stat().st_size > MAX_RANGES_BYTES:
        raise TangoError(f"{path}: calibration ranges larger than {MAX_RANGES_BYTES >> 20} MiB")
    try:
        data = json.loads(path.read_text(), parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TangoError(f"{path}: calibration ranges are not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
        raise TangoError(f"{path}: calibration ranges have no 'data' object")
    for name, entry in data["data"].items():
        if not _finite(entry):
            raise TangoError(f"{path}: calibration range of '{name[:80]}' is not finite numbers")
    return path


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _finite(value) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return isinstance(value, str | type(None))
