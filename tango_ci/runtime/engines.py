"""Engine sessions a bundle (and bench) runs an artifact with: onnxruntime, and TVM's Relax
virtual machine for a compiled library. TensorRT artifacts are not bundled yet."""

from __future__ import annotations

from pathlib import Path

import numpy as np

GRAPH_OPTIMISATIONS = ("basic", "extended", "all")


def onnxruntime_session(
    model: Path,
    threads: int | None = None,
    providers: list[str] | None = None,
    graph_optimization: str = "all",
    spinning: bool = True,
):
    """An onnxruntime session as bench timed it: the recorded optimisation level and spinning,
    ``threads`` intra-op threads (one inter-op), the first available of ``providers``."""
    import onnxruntime as ort

    if graph_optimization not in GRAPH_OPTIMISATIONS:
        raise ValueError(
            f"graph optimisation '{graph_optimization}' is not one of {GRAPH_OPTIMISATIONS}"
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[graph_optimization]
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    available = set(ort.get_available_providers())
    chosen = [p for p in (providers or []) if p in available] or ["CPUExecutionProvider"]
    return ort.InferenceSession(str(model), options, providers=chosen)


class OnnxRuntimeRunner:
    """One batch (N, C, H, W float32) in, the network's outputs out."""

    def __init__(
        self, model: Path, threads: int | None, providers: list[str], session: dict
    ) -> None:
        self.session = onnxruntime_session(
            model,
            threads,
            providers,
            str(session.get("graph_optimization", "all")),
            bool(session.get("spinning", True)),
        )
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.input_shape = list(first.shape)

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: batch})


class TvmRunner:
    """A TVM library (Relax VM) built for a fixed batch; one batch in, the outputs out."""

    def __init__(self, library: Path, device: str = "cpu", batch: int = 1) -> None:
        import tvm
        from tvm import relax

        self._tvm = tvm
        self.device = tvm.cuda(0) if device == "cuda" else tvm.cpu(0)
        self.vm = relax.VirtualMachine(tvm.runtime.load_module(str(library)), self.device)
        self.input_shape = [batch]

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        data = self._tvm.runtime.tensor(np.ascontiguousarray(batch), self.device)
        result = self.vm["main"](data)
        if hasattr(result, "numpy"):  # one output tensor
            return [result.numpy()]
        return [o.numpy() for o in result]
