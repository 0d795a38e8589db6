"""Compile backends: one module per engine, an explicit registry, capabilities as data.

Backends never call each other; the pipeline picks one per target with :func:`get_compiler`
after :func:`check_request` has refused what the backend or the runner cannot serve.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from tango_ci.compile._base import ARTIFACT, BaseCompiler, BuildRequest, Capabilities, Predictor
from tango_ci.compile._capabilities import CAPABILITIES
from tango_ci.exceptions import UnknownNameError, UnsupportedRequestError


def _onnxruntime() -> BaseCompiler:
    from tango_ci.compile._onnxruntime import OnnxRuntimeCompiler

    return OnnxRuntimeCompiler()


def _pytorch() -> BaseCompiler:
    from tango_ci.compile._pytorch import PyTorchCompiler

    return PyTorchCompiler()


def _tvm() -> BaseCompiler:
    from tango_ci.compile._tvm import TvmCompiler

    return TvmCompiler()


def _tensorrt() -> BaseCompiler:
    from tango_ci.compile._tensorrt import TensorRtCompiler

    return TensorRtCompiler()


# name -> factory; factories import their engine module only when used.
COMPILERS = {"onnxruntime": _onnxruntime, "tvm": _tvm, "tensorrt": _tensorrt,
             "pytorch": _pytorch}


def get_compiler(engine: str) -> BaseCompiler:
    if engine not in COMPILERS:
        raise UnknownNameError(kind="compile backend", name=engine, valid=", ".join(COMPILERS))
    return COMPILERS[engine]()


AUTO = "auto"


def auto_candidates(target, runner) -> list:
    """The concrete targets ``engine: auto`` tries: every engine and precision of the runner
    that the engine's capability table accepts."""
    accelerator = runner.hardware.accelerator.kind
    return [replace(target, engine=engine.name, precision=precision)
            for engine in runner.engines for precision in runner.precisions
            if engine.name in COMPILERS
            and CAPABILITIES[engine.name].refusal(precision, accelerator) is None]


def check_request(target, runner) -> None:
    """Refuse, before any work, what the engine or the runner cannot do."""
    if target.engine == AUTO:
        if not auto_candidates(target, runner):
            raise UnsupportedRequestError(backend="auto", request=f"build target "
                                          f"'{target.name}' for runner '{runner.name}'",
                                          reason="no engine of the runner offers any of its "
                                                 "precisions")
        return
    request = f"build target '{target.name}' for runner '{runner.name}'"
    refusal = CAPABILITIES[target.engine].refusal(target.precision,
                                                  runner.hardware.accelerator.kind)
    if refusal:
        raise UnsupportedRequestError(backend=target.engine, request=request, reason=refusal)
    if runner.engine(target.engine) is None:
        raise UnsupportedRequestError(backend=target.engine, request=request, reason=(
            f"the runner does not have it installed (it has "
            f"{', '.join(e.name for e in runner.engines)})"))


def load_artifact(artifact_dir: Path, threads: int | None = None) -> Predictor:
    """Load any built artifact, whichever backend made it."""
    engine = json.loads((Path(artifact_dir) / ARTIFACT).read_text())["engine"]
    return get_compiler(engine).load(Path(artifact_dir), threads)


__all__ = ["AUTO", "CAPABILITIES", "COMPILERS", "auto_candidates", "BaseCompiler", "BuildRequest", "Capabilities",
           "Predictor", "check_request", "get_compiler", "load_artifact"]
