"""Capability tables of every engine, importable without importing any engine."""

from __future__ import annotations

from tango_ci.compile._base import Capabilities

_CPU, _NVIDIA = "none", "nvidia-gpu"

ONNXRUNTIME = Capabilities(
    engine="onnxruntime",
    precisions={_CPU: frozenset({"fp32", "int8"}), _NVIDIA: frozenset({"fp32", "fp16", "int8"})},
    dynamic_batch=True,
    packages=("onnxruntime",),
    distributions=("onnxruntime", "onnxruntime-gpu"),
    install_hint="pip install onnxruntime (or onnxruntime-gpu on NVIDIA devices)",
    recipe_search=True,
)
TVM = Capabilities(
    engine="tvm",
    precisions={_CPU: frozenset({"fp32"}), _NVIDIA: frozenset({"fp32", "fp16"})},
    dynamic_batch=False,
    packages=("tvm",),
    distributions=("apache-tvm", "tvm"),
    install_hint="pip install apache-tvm",
    notes="untuned TVM on x86 CPUs is far slower than onnxruntime; tune with MetaSchedule",
    quick_build=False,
)
TENSORRT = Capabilities(
    engine="tensorrt",
    precisions={_NVIDIA: frozenset({"fp32", "fp16", "int8"})},
    dynamic_batch=True,
    packages=("tensorrt",),
    distributions=("tensorrt",),
    install_hint="pip install 'tango-ci[tensorrt]' on a machine with an NVIDIA GPU",
)
PYTORCH = Capabilities(
    engine="pytorch",
    precisions={_CPU: frozenset({"fp32"}), _NVIDIA: frozenset({"fp32", "fp16", "bf16"})},
    dynamic_batch=True,
    packages=("torch",),
    distributions=("torch",),
    install_hint="pip install torch",
    needs_network=True,
    timed_modes=("eager", "torchscript", "compile"),
)

CAPABILITIES: dict[str, Capabilities] = {c.engine: c for c in (ONNXRUNTIME, TVM, TENSORRT, PYTORCH)}
