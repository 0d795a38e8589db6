"""Engine sessions a bundle (and bench) runs an artifact with: onnxruntime, TVM's Relax
virtual machine for a compiled library, and a TensorRT engine with cuda-python buffers (no
torch on the device)."""

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


def _cudart():
    """The CUDA runtime of cuda-python (``cuda.bindings.runtime``; ``cuda.cudart`` before 12.6)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        from cuda import cudart as runtime
    return runtime


class CudaMemory:
    """Device buffers and one stream through the CUDA runtime (cuda-python): what a TensorRT
    engine needs on a device without torch. Buffers grow when a larger batch needs it."""

    def __init__(self) -> None:
        self.cudart = _cudart()
        self.stream = self._call(self.cudart.cudaStreamCreate())
        self.buffers: dict[str, tuple[int, int]] = {}  # name -> (pointer, bytes)

    def _call(self, result):
        error, *values = result
        if error != self.cudart.cudaError_t.cudaSuccess:
            _, text = self.cudart.cudaGetErrorString(error)
            raise RuntimeError(f"CUDA: {text.decode() if isinstance(text, bytes) else text}")
        return values[0] if len(values) == 1 else None

    def buffer(self, name: str, nbytes: int) -> int:
        """A device pointer of at least ``nbytes`` for ``name``."""
        pointer, size = self.buffers.get(name, (0, 0))
        if size < nbytes:
            if pointer:
                self._call(self.cudart.cudaFree(pointer))
            pointer, size = int(self._call(self.cudart.cudaMalloc(max(nbytes, 1)))), nbytes
            self.buffers[name] = (pointer, size)
        return pointer

    def upload(self, pointer: int, array: np.ndarray) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call(
            self.cudart.cudaMemcpyAsync(pointer, array.ctypes.data, array.nbytes, kind, self.stream)
        )

    def download(self, pointer: int, array: np.ndarray) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call(
            self.cudart.cudaMemcpyAsync(array.ctypes.data, pointer, array.nbytes, kind, self.stream)
        )

    def synchronize(self) -> None:
        self._call(self.cudart.cudaStreamSynchronize(self.stream))

    def close(self) -> None:
        for pointer, _ in self.buffers.values():
            self._call(self.cudart.cudaFree(pointer))
        self.buffers.clear()
        self._call(self.cudart.cudaStreamDestroy(self.stream))


class TensorRtRunner:
    """A serialised TensorRT engine (built for this GPU and TensorRT version) run with
    cuda-python buffers; the batch is chunked to the size bench measured."""

    def __init__(self, engine: Path, batch: int = 1) -> None:
        import tensorrt as trt

        self._trt = trt
        self.memory = CudaMemory()
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(engine.read_bytes())
        if self.engine is None:
            raise RuntimeError(
                f"{engine.name}: TensorRT could not load it (an engine runs only on the GPU "
                "model and TensorRT version that built it)"
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == mode]
        self.outputs = [n for n in names if n not in self.inputs]
        self.input_shape = [batch]

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        name = self.inputs[0]
        self.context.set_input_shape(name, tuple(batch.shape))
        pointer = self.memory.buffer(name, batch.nbytes)
        self.memory.upload(pointer, batch)
        self.context.set_tensor_address(name, pointer)
        results = []
        for output in self.outputs:
            dtype = np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(output)))
            host = np.empty(tuple(self.context.get_tensor_shape(output)), dtype)
            pointer = self.memory.buffer(output, host.nbytes)
            self.context.set_tensor_address(output, pointer)
            results.append((host, pointer))
        if not self.context.execute_async_v3(int(self.memory.stream)):
            raise RuntimeError("TensorRT execution failed")
        for host, pointer in results:
            self.memory.download(pointer, host)
        self.memory.synchronize()
        return [host.astype(np.float32, copy=False) for host, _ in results]
