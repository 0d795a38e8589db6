"""Which layers' quantisation costs the most: one pass over float and fake-quantised graphs.

Every convolution and matrix product of the QDQ graph is compared with the float network at
its output and at its input; what the layer adds to the relative error (output error minus
input error) ranks it, as Neural Compressor's MSE-driven fallback does. The search then keeps
the top-ranked layers in float one at a time, measuring accuracy after each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tango_ci.compile.quantisation import WEIGHTED_OP_TYPES

_DQ_SUFFIX = "_DequantizeLinear_Output"  # a float tensor as a quantised consumer reads it
_Q_SUFFIX = "_QuantizeLinear_Input"  # a graph output, renamed where it is quantised
_PROBE_IMAGES = 32


def rank_layers(
    prepared: Path, quantised_qdq: Path, images: np.ndarray, work: Path
) -> list[tuple[str, float]]:
    """Weighted layers of ``prepared`` (float) as (node name, error added), worst first;
    ``quantised_qdq`` is the same network in QDQ form."""
    import onnx

    quantised = onnx.load(str(quantised_qdq))
    in_quantised = _tensor_names(quantised)
    # node -> (float input before this node quantises it, output), as both graphs name them:
    # a layer kept in float skips its own input quantisation, so that error is the layer's
    probes: dict[str, tuple[str, str, str]] = {}
    for node in quantised.graph.node:
        if node.op_type in WEIGHTED_OP_TYPES and node.input and node.output:
            source = node.input[0].removesuffix(_DQ_SUFFIX)
            if source not in in_quantised:
                source = node.input[0]
            probes[node.name] = (source, node.output[0], node.output[0].removesuffix(_Q_SUFFIX))
    reference = onnx.load(str(prepared))
    known = _tensor_names(reference)
    probes = {k: v for k, v in probes.items() if v[0] in known and v[2] in known}
    if not probes:
        return []
    floats = _run_with_outputs(
        reference, sorted({t for p in probes.values() for t in (p[0], p[2])}), images, work
    )
    quants = _run_with_outputs(
        quantised, sorted({t for p in probes.values() for t in p[:2]}), images, work
    )
    ranked = [
        (
            name,
            _relative_error(quants[q_out], floats[f_out])
            - _relative_error(quants[source], floats[source]),
        )
        for name, (source, q_out, f_out) in probes.items()
    ]
    return sorted(ranked, key=lambda item: -item[1])


def _tensor_names(model) -> set[str]:
    names = {i.name for i in model.graph.input}
    for node in model.graph.node:
        names.update(node.output)
    return names


def _relative_error(quantised: np.ndarray, reference: np.ndarray) -> float:
    scale = float(np.linalg.norm(reference)) or 1.0
    return float(np.linalg.norm(quantised.astype(np.float64) - reference)) / scale


def _run_with_outputs(model, tensors: list[str], images: np.ndarray, work: Path) -> dict:
    """Run ``model`` unoptimised (the QDQ graph as the fake-quantised network it describes)
    with ``tensors`` exposed as outputs; their values stacked over the probe images."""
    import onnx
    import onnxruntime as ort

    existing = {o.name for o in model.graph.output}
    for name in tensors:
        if name not in existing:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    path = work / "sensitivity-probe.onnx"
    onnx.save(model, str(path))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    collected: dict[str, list[np.ndarray]] = {t: [] for t in tensors}
    for image in images[:_PROBE_IMAGES]:
        values = session.run(tensors, {feed: image[None]})
        for name, value in zip(tensors, values, strict=True):
            collected[name].append(value)
    path.unlink(missing_ok=True)
    return {name: np.concatenate(values) for name, values in collected.items()}
