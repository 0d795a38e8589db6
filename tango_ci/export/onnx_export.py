"""Export a PyTorch network to ONNX and prove the file computes what the network computes."""

from __future__ import annotations

import io
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tango_ci.exceptions import TangoError

INPUT_NAME = "images"
OUTPUT_NAME = "logits"


class ParityError(TangoError):
    _template = (
        "the ONNX model differs from PyTorch by up to {max_abs:.3g} (mean {mean_abs:.3g}), "
        "{max_rel:.3g} relative to max(1, largest |output| {scale:.3g}), more than the "
        "tolerance {tolerance:g} of export.tolerance"
    )


def export_onnx(
    model: nn.Module,
    path: Path,
    input_shape: tuple[int, int, int, int],
    *,
    opset: int = 17,
    simplify: bool = True,
) -> dict:
    """Write ``model`` as ONNX with a dynamic batch axis; returns what was done."""
    import onnx

    model = model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    example = torch.zeros(input_shape)
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        # dynamo=False: the TorchScript exporter writes one self-contained file and needs no
        # onnxscript; the dynamo exporter would split weights into a .onnx.data file.
        torch.onnx.export(
            model,
            (example,),
            str(partial),
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            dynamo=False,
        )
    proto = onnx.load(str(partial))
    onnx.checker.check_model(proto, full_check=True)
    simplified = False
    if simplify:
        import onnxslim

        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            proto = onnxslim.slim(proto)
        onnx.checker.check_model(proto, full_check=True)
        simplified = True
    onnx.save(proto, str(partial))
    partial.replace(path)
    return {
        "opset": opset,
        "simplified": simplified,
        "nodes": len(proto.graph.node),
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "input_shape": list(input_shape),
    }


def parity(model: nn.Module, onnx_path: Path, batch: np.ndarray, tolerance: float) -> dict:
    """Compare ONNX (onnxruntime, no graph optimisation) with PyTorch on ``batch``.

    Raises :class:`ParityError` beyond ``tolerance`` (see :func:`compare_outputs`); returns
    the differences otherwise.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(batch)).numpy()
    actual = session.run(None, {session.get_inputs()[0].name: batch})[0]
    return compare_outputs(expected, actual, tolerance)


def compare_outputs(expected: np.ndarray, actual: np.ndarray, tolerance: float) -> dict:
    """Pass when max |actual - expected| <= ``tolerance`` x max(1, max |expected|).

    Relative to the outputs' scale because float32 rounding is: logits near 1e5 differ by
    ~0.01 between two correct runtimes, which no absolute tolerance of at most 1 could pass.
    Outputs within +-1 keep the plain absolute meaning. Raises :class:`ParityError` beyond
    it; returns the differences otherwise.
    """
    difference = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    max_abs = float(difference.max()) if difference.size else 0.0
    result: dict[str, Any] = {
        "max_abs": max_abs,
        "mean_abs": float(difference.mean()) if difference.size else 0.0,
        "max_rel": max_abs / max(1.0, scale),
        "scale": scale,
        "tolerance": tolerance,
        "allowed": tolerance * max(1.0, scale),
        "images": len(expected),
        "top1_agreement": float((expected.argmax(1) == actual.argmax(1)).mean()),
    }
    if not result["max_abs"] <= result["allowed"]:  # NaN in either output fails too
        raise ParityError(**result)
    return result
