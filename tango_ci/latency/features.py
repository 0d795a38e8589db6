"""What a latency model reads from a network: its ONNX graph cut into kernels, each with a type
and its work.

Every engine of a runner runs the network exported to ONNX (PyTorch runs the same network), so
the graph is the one description that covers classification families, supernet subnets and YOLO
scales alike. A kernel is one node: convolutions keyed by grouping, kernel size, stride, channels and output
size, elementwise operations after a convolution keyed apart from free-standing ones (engines
fuse them, and the fitted cost shows whether this one does), everything else by operator. Its work is
multiply-accumulates, activation elements read and written, and weights.

PyTorch eager runs what the ONNX graph no longer shows, so its kernels are read apart, one a
PyTorch operator (checked against its profiler in the tests): a BatchNorm after every
convolution the export folded one into (one with a bias, but not a squeeze-excitation's
convolution of pooled features nor a detection head's, which have biases of their own), keyed
like the BatchNorms the graph still shows; one ``silu`` for the graph's x * sigmoid(x); the
arithmetic of dynamic-batch reshapes, done on the host, as ``shape``; dense convolutions keyed
``convbig`` where PyTorch hands them to oneDNN rather than its own im2col and GEMM, weights
counted as elements read (oneDNN reorders them on every eager call); and no activation fused
into its convolution. PyTorch's choice of oneDNN (``ConvParams::use_mkldnn``) depends on the
thread count, so the set is named for it: ``pytorch-eager-1t`` (one thread: a 1x1 stride-1
convolution of a batch under 16 stays on PyTorch's GEMM however large) and
``pytorch-eager-mt``. ``pytorch-eager`` is the first reading (oneDNN for an input over 20480
elements or a batch over one; a BatchNorm after any convolution with a bias and an output over
one pixel; SiLU as two kernels), kept so that models fitted on it predict as they were fitted.

The file is untrusted (a pull request's network): it is parsed as data, with a size limit, and
nothing in it is run.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tango_ci.exceptions import TangoError

MAX_ONNX_BYTES = 2 * 2**30
# what a kernel list is read as; a model remembers the set it was fitted on
DEFAULT_FEATURE_SET = "onnx"
EAGER_SETS = ("pytorch-eager-1t", "pytorch-eager-mt", "pytorch-eager")
FEATURE_SETS = (DEFAULT_FEATURE_SET, *EAGER_SETS)
#: the sets an engine's models are fitted on, on one thread and on several (others: the graph's)
_ENGINE_SETS = {"pytorch": ("pytorch-eager-1t", "pytorch-eager-mt")}
ONEDNN_INPUT = 20480  # PyTorch's threshold for a dense convolution on oneDNN (fp32 CPU)
# count, multiply-accumulates (millions), activation elements read + written (millions)
FEATURES = ("count", "mmacs", "melems")
_UNARY = frozenset(
    {"Relu", "Clip", "HardSigmoid", "HardSwish", "Sigmoid", "LeakyRelu", "Tanh", "Elu", "Gelu"}
)
_BINARY = frozenset({"Add", "Mul", "Sub", "Div"})
_POOLS = frozenset({"MaxPool", "AveragePool"})
_POOLED = frozenset({"GlobalAveragePool", "GlobalMaxPool", "ReduceMean"})
#: operators whose output is computed from shapes alone
_SHAPE_SOURCES = frozenset({"Shape", "Constant", "ConstantOfShape", "Range", "Size"})
_SHAPE_ONLY = frozenset(
    {"Shape", "Constant", "Unsqueeze", "Squeeze", "Cast", "Gather", "Range", "ConstantOfShape"}
)


class FeatureError(TangoError):
    _template = "{source}: cannot read the network for a latency prediction: {reason}"


@dataclass(frozen=True)
class Kernel:
    # the finest key; its parts go from coarse to fine, so a model may cut it short:
    # conv-k3-s1-c64-h16 (kind, kernel, stride, channels and output height up to a power of
    # two), dwconv-k5-s2-c128-h8, linear-c512, relu-fused, add, maxpool-k5, ...
    key: str
    macs: float
    elems: float

    @property
    def kind(self) -> str:
        """The coarse type a rare key falls back to: conv, dwconv, relu, add ..."""
        return self.key.split("-", 1)[0]


def _bucket(value: int) -> int:
    """``value`` rounded up to a power of two: kernels of one bucket run about as efficiently
    per multiply-accumulate (narrow or tiny convolutions run far below peak)."""
    return 1 << max(0, int(value) - 1).bit_length() if value > 0 else 0


def _key(op: str | bytes) -> str:
    """An operator name as a kernel key: lower case letters and digits, at most 40 (a name
    that is not UTF-8 arrives as bytes)."""
    text = op if isinstance(op, str) else bytes(op).decode("ascii", "replace")
    return "".join(c for c in text.lower() if c.isascii() and c.isalnum())[:40] or "op"


def _dims(value_info) -> tuple[int, ...] | None:
    shape = value_info.type.tensor_type.shape
    dims = []
    for dim in shape.dim:
        if not dim.HasField("dim_value"):
            return None
        dims.append(int(dim.dim_value))
    return tuple(dims)


class _Malformed(ValueError):
    """An attribute of another type than the operator's (a hostile or broken file)."""


def _attribute(node, name: str, default):
    """An integer attribute (``group``) or a list of them (``strides``, ``dilations``,
    ``kernel_shape``) of ``node``, or ``default``; :class:`_Malformed` for another type."""
    import onnx

    for attribute in node.attribute:
        if attribute.name == name:
            value = onnx.helper.get_attribute_value(attribute)
            whole = isinstance(value, int) or (
                isinstance(value, list) and all(isinstance(v, int) for v in value)
            )
            if not whole or isinstance(default, int) != isinstance(value, int):
                raise _Malformed(f"a {_key(node.op_type)} node's {name} is not whole numbers")
            return value
    return default


def _load(path: Path, batch: int, size: int | None):
    import onnx

    path = Path(path)
    if not path.is_file() or path.is_symlink():
        raise FeatureError(source=str(path), reason="not a regular file")
    if path.stat().st_size > MAX_ONNX_BYTES:
        raise FeatureError(source=str(path), reason=f"larger than {MAX_ONNX_BYTES >> 30} GiB")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # a corrupt file: say so in one line
        raise FeatureError(source=str(path), reason=f"not an ONNX model ({exc})") from None
    initializers = {i.name for i in proto.graph.initializer}
    for graph_input in proto.graph.input:
        if graph_input.name in initializers:
            continue
        dims = graph_input.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):  # a dynamic batch (and image size) made concrete
            if axis and dim.HasField("dim_value"):
                continue
            value = batch if axis == 0 else (3 if axis == 1 else size)
            if value is None:
                raise FeatureError(
                    source=str(path),
                    reason=f"input {graph_input.name} leaves its size open; give the image size",
                )
            dim.Clear()
            dim.dim_value = value
    try:
        return onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception as exc:
        raise FeatureError(source=str(path), reason=f"shape inference failed ({exc})") from None


def feature_set(engine: str, threads: int) -> str:
    """The name of the kernel reading a model of ``engine`` on ``threads`` is fitted on."""
    one, several = _ENGINE_SETS.get(engine, (DEFAULT_FEATURE_SET, DEFAULT_FEATURE_SET))
    return one if threads <= 1 else several


def on_onednn(features: str, batch: int, inputs: float, kernel: tuple[int, int], node) -> bool:
    """Whether PyTorch eager hands a dense convolution (``node``, with an input of ``inputs``
    elements and a ``kernel`` of height and width) to oneDNN, as ``ConvParams::use_mkldnn``
    decides for float32 on a CPU under the feature set ``features``."""
    if features == "pytorch-eager":  # the first approximation, for the models fitted on it
        return batch > 1 or inputs > ONEDNN_INPUT
    strided = max(_attribute(node, "strides", [1]) or [1]) > 1
    dilated = max(_attribute(node, "dilations", [1]) or [1]) > 1
    # a 1x1 convolution is faster on PyTorch's GEMM when single-threaded
    worth = strided or dilated or batch >= 16 or kernel != (1, 1) or features == "pytorch-eager-mt"
    # groups > 1 never reaches here: keyed dwconv or gconv, whatever runs them
    return worth and (min(kernel) > 3 or batch > 1 or inputs > ONEDNN_INPUT)


def kernels(
    path: Path, batch: int = 1, size: int | None = None, features: str = DEFAULT_FEATURE_SET
) -> list[Kernel]:
    """The kernels of the ONNX network at ``path`` run at ``batch`` (and images of ``size``
    where the graph leaves the image size open), read as the feature set ``features`` says."""
    if features not in FEATURE_SETS:
        raise FeatureError(source=str(path), reason=f"unknown feature set '{features}'")
    eager = features in EAGER_SETS
    graph = _load(path, batch, size).graph
    try:
        return _read(path, graph, batch, features, eager)
    except _Malformed as exc:
        raise FeatureError(source=str(path), reason=str(exc)) from None


def _read(path: Path, graph, batch: int, features: str, eager: bool) -> list[Kernel]:
    shapes: dict[str, tuple[int, ...]] = {}
    for info in [*graph.value_info, *graph.input, *graph.output]:
        dims = _dims(info)
        if dims is not None:
            shapes[info.name] = dims
    weights = {i.name: tuple(i.dims) for i in graph.initializer}
    constants = set(weights) | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    producers = {o: n for n in graph.node for o in n.output}
    consumers = Counter(i for n in graph.node for i in n.input)
    read_as_eager = eager and features != "pytorch-eager"  # the first reading stays as it was
    users: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    silu = _silu_pairs(graph, users) if read_as_eager else {}
    shape_like: set[str] = set()  # tensors computed from shapes only (dynamic-batch reshapes)
    pooled: set[str] = set()  # a squeeze-excitation's: globally pooled, then convolved

    def elements(name: str) -> float:
        dims = shapes.get(name) or weights.get(name)
        return float(math.prod(dims)) if dims else 0.0

    found: list[Kernel] = []
    for node in graph.node:
        op = node.op_type
        inputs = [i for i in node.input if i]
        dynamic = [i for i in inputs if i not in constants]
        if op in _SHAPE_SOURCES or (dynamic and all(i in shape_like for i in dynamic)):
            shape_like.update(node.output)
            if read_as_eager and op not in _SHAPE_ONLY:
                found.append(Kernel("shape", 0.0, 0.0))  # PyTorch computes it on the host
                continue
        if op in _POOLED or (inputs and inputs[0] in pooled and (op == "Conv" or op in _UNARY)):
            pooled.update(node.output)
        if id(node) in silu:
            if silu[id(node)]:  # the Sigmoid of x * sigmoid(x): one in-place SiLU in PyTorch
                found.append(Kernel("silu", 0.0, 2 * elements(node.output[0])))
            continue  # its Mul is that SiLU
        need = 2 if op in ("Conv", "Gemm", "MatMul") else int(op in _UNARY or op in _BINARY)
        if len(inputs) < need or (need and not node.output):
            raise FeatureError(
                source=str(path),
                reason=f"a {_key(op)} node with {len(inputs)} inputs and {len(node.output)} "
                "outputs is not a network",
            )
        moved = sum(elements(i) for i in inputs if i not in constants) + sum(
            elements(o) for o in node.output
        )
        out = elements(node.output[0]) if node.output else 0.0
        if op == "Conv":
            kernel_shape = weights.get(inputs[1]) or shapes.get(inputs[1]) or (0, 0, 1, 1)
            size = int(kernel_shape[-1]) if len(kernel_shape) > 2 else 1
            stride = max(_attribute(node, "strides", [1]) or [1])
            group = int(_attribute(node, "group", 1))
            in_channels = (*shapes.get(inputs[0], ()), 0, 0)[1]  # a hostile 1-D shape: 0
            per_output = math.prod(kernel_shape[1:]) if len(kernel_shape) > 1 else 1
            if group > 1 and group == in_channels:
                kind = "dwconv"
            elif group > 1:
                kind = "gconv"
            else:
                kind = "conv"
            out_shape = shapes.get(node.output[0]) or (0, 0, 0)
            out_channels = out_shape[1] if len(out_shape) > 1 else 0  # a hostile 1-D shape
            channels = min(in_channels, out_channels) if kind == "conv" else out_channels
            if eager:
                moved += elements(inputs[1])  # oneDNN reorders the weights on every call
                kernel = tuple(int(d) for d in (1, 1, *kernel_shape[2:])[-2:])
                if kind == "conv" and on_onednn(
                    features, batch, elements(inputs[0]), (kernel[0], kernel[1]), node
                ):
                    kind = "convbig"
            key = f"{kind}-k{size}-s{stride}-c{_bucket(channels)}-h{_bucket(out_shape[-1])}"
            found.append(Kernel(key, out * per_output, moved))
            if eager and len(inputs) > 2 and _folded(read_as_eager, node, out_shape, users, pooled):
                # folded by the export only: keyed as the BatchNorm the graph still shows
                found.append(Kernel("batchnormalization", 0.0, 2 * out))
        elif op in ("Gemm", "MatMul"):
            depth = (shapes.get(inputs[0]) or weights.get(inputs[0]) or (1,))[-1]
            found.append(Kernel(f"linear-c{_bucket(depth)}", out * depth, moved))
        elif op in _UNARY or (op in _BINARY and any(i in constants for i in inputs)):
            producer = producers.get(inputs[0])
            fused = (
                producer is not None
                and producer.op_type == "Conv"
                and consumers[producer.output[0]] <= 2  # x * sigmoid(x) reads it twice
            )
            fused = fused and not eager  # eager PyTorch runs every operator on its own
            suffix = "-fused" if fused else ("-const" if op in _BINARY else "")
            found.append(Kernel(f"{_key(op)}{suffix}", 0.0, moved))
        elif op in _POOLS:
            size = max(_attribute(node, "kernel_shape", [1]) or [1])
            found.append(Kernel(f"{_key(op)}-k{size}", 0.0, moved))
        elif op in _SHAPE_ONLY:
            found.append(Kernel("shape", 0.0, 0.0))
        else:
            found.append(Kernel(_key(op), 0.0, moved))
    if not found:
        raise FeatureError(source=str(path), reason="the graph has no nodes")
    return found


def _folded(modern: bool, node, out_shape: tuple, users: dict[str, list], pooled: set) -> bool:
    """Whether the convolution ``node`` (with a bias) had a BatchNorm the export folded into
    it: not a squeeze-excitation's convolution of pooled features, nor a detection head's,
    which have biases of their own (the first eager reading: an output over one pixel)."""
    if not modern:
        return math.prod(out_shape[2:]) > 1
    return node.input[0] not in pooled and not _detection_head(users, node)


def _detection_head(users: dict[str, list], node) -> bool:
    """Whether the convolution ``node`` ends a detection head: its output goes only into a
    Concat, or only into a Reshape that goes only into one (an attention block's convolution
    is reshaped and split)."""

    def only(name: str, op: str) -> list:
        found = users.get(name, [])
        return found if found and all(user.op_type == op for user in found) else []

    if not node.output:
        return False
    reshaped = only(node.output[0], "Reshape")
    return bool(only(node.output[0], "Concat")) or (
        len(reshaped) == 1
        and bool(reshaped[0].output)
        and bool(only(reshaped[0].output[0], "Concat"))
    )


def _silu_pairs(graph, users: dict[str, list]) -> dict[int, bool]:
    """The nodes of each ``x * sigmoid(x)`` (SiLU, exported as two nodes): True for its
    Sigmoid, False for its Mul, by ``id``."""
    pairs: dict[int, bool] = {}
    for node in graph.node:
        if node.op_type != "Sigmoid" or len(node.input) != 1 or len(node.output) != 1:
            continue
        found = users.get(node.output[0], [])
        if (
            len(found) == 1
            and found[0].op_type == "Mul"
            and sorted(found[0].input) == sorted([node.input[0], node.output[0]])
        ):
            pairs[id(node)], pairs[id(found[0])] = True, False
    return pairs


def aggregate(found: list[Kernel], keys: dict[str, str] | None = None) -> dict[str, list[float]]:
    """Summed features per key. ``keys`` maps a kernel key to the column it counts in (a rare
    key to its kind); keys absent from it count under their own name."""
    totals: dict[str, list[float]] = {}
    for kernel in found:
        key = (keys or {}).get(kernel.key, kernel.key)
        row = totals.setdefault(key, [0.0, 0.0, 0.0])
        row[0] += 1
        row[1] += kernel.macs / 1e6
        row[2] += kernel.elems / 1e6
    return totals


def network_features(
    path: Path, batch: int = 1, size: int | None = None, features: str = DEFAULT_FEATURE_SET
) -> dict[str, list[float]]:
    """Summed features per kernel key of the network at ``path``: what a profile stores."""
    return aggregate(kernels(path, batch, size, features))


def total_macs(features: dict[str, list[float]]) -> float:
    """Millions of multiply-accumulates of a network (the FLOPs baseline reads only this)."""
    return sum(row[1] for row in features.values())
