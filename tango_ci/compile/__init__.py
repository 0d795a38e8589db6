"""Compile backends: one module per engine, an explicit registry, capabilities as data.

Backends never call each other; the pipeline picks one per target with :func:`get_compiler`
after :func:`check_request` has refused what the backend or the runner cannot serve.
"""

from __future__ import annotations

import json
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


# name -> factory; factories import their engine module only when used.
COMPILERS = {"onnxruntime": _onnxruntime, "pytorch": _pytorch}


def get_compiler(engine: str) -> BaseCompiler:
    if engine not in COMPILERS:
        raise UnknownNameError(kind="compile backend", name=engine, valid=", ".join(COMPILERS))
    return COMPILERS[engine]()


def check_request(target, runner) -> None:
    """Refuse, before any work, what the engine or the runner cannot do."""
    refusal = CAPABILITIES[target.engine].refusal(target.precision,
                                                  runner.hardware.accelerator.kind)
    if refusal:
        raise UnsupportedRequestError(backend=target.engine, request=f"build target "
                                      f"'{target.name}' for runner '{runner.name}'",
                                      reason=refusal)
    if target.engine not in COMPILERS:
        raise UnsupportedRequestError(backend=target.engine, request=f"build target "
                                      f"'{target.name}'", reason="this version has backends "
                                      f"for {', '.join(COMPILERS)} only")


def load_artifact(artifact_dir: Path, threads: int | None = None) -> Predictor:
    """Load any built artifact, whichever backend made it."""
    engine = json.loads((Path(artifact_dir) / ARTIFACT).read_text())["engine"]
    return get_compiler(engine).load(Path(artifact_dir), threads)


__all__ = ["CAPABILITIES", "COMPILERS", "BaseCompiler", "BuildRequest", "Capabilities",
           "Predictor", "check_request", "get_compiler", "load_artifact"]
