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
        "the ONNX model differs from PyTorch by up to {max_abs:.3g} (mean {mean_abs:.3g})"
        ", more than the tolerance {tolerance:g} of export.tolerance"
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

    Raises :class:`ParityError` beyond ``tolerance``; returns the differences otherwise.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(batch)).numpy()
    actual = session.run(None, {session.get_inputs()[0].name: batch})[0]
    difference = np.abs(expected - actual)
    result: dict[str, Any] = {
        "max_abs": float(difference.max()),
        "mean_abs": float(difference.mean()),
        "tolerance": tolerance,
        "images": len(batch),
        "top1_agreement": float((expected.argmax(1) == actual.argmax(1)).mean()),
    }
    if result["max_abs"] > tolerance:
        raise ParityError(**result)
    return result
