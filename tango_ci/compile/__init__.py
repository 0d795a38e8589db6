"""Compile backends: one module per engine, an explicit registry, capabilities as data.

Backends never call each other; the pipeline picks one per target with :func:`get_compiler`
after :func:`check_request` has refused what the backend or the runner cannot serve.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tango_ci.compile._base import ARTIFACT, BaseCompiler, BuildRequest, Capabilities, Predictor
from tango_ci.compile._pytorch import PyTorchPredictor
from tango_ci.exceptions import TangoError, UnsupportedRequestError
from tango_ci.plugins import ENGINES


def get_compiler(engine: str) -> BaseCompiler:
    """The backend of ``engine``, from the one engine table (:data:`tango_ci.plugins.ENGINES`)."""
    return ENGINES.get(engine)


def capabilities(engine: str) -> Capabilities:
    return ENGINES.get(engine).capabilities


AUTO = "auto"


def auto_candidates(target, runner) -> list:
    """The concrete targets ``engine: auto`` tries: every engine and precision of the runner
    that the engine's capability table accepts."""
    accelerator = runner.hardware.accelerator.kind
    return [
        replace(target, engine=engine.name, precision=precision)
        for engine in runner.engines
        for precision in runner.precisions
        if engine.name in ENGINES
        and capabilities(engine.name).refusal(precision, accelerator) is None
    ]


def check_request(target, runner) -> None:
    """Refuse, before any work, what the engine or the runner cannot do."""
    if target.engine == AUTO:
        if not auto_candidates(target, runner):
            raise UnsupportedRequestError(
                backend="auto",
                request=f"build target '{target.name}' for runner '{runner.name}'",
                reason="no engine of the runner offers any of its precisions",
            )
        return
    request = f"build target '{target.name}' for runner '{runner.name}'"
    refusal = capabilities(target.engine).refusal(
        target.precision, runner.hardware.accelerator.kind
    )
    if refusal:
        raise UnsupportedRequestError(backend=target.engine, request=request, reason=refusal)
    if runner.engine(target.engine) is None:
        raise UnsupportedRequestError(
            backend=target.engine,
            request=request,
            reason=(
                f"the runner does not have it installed (it has "
                f"{', '.join(e.name for e in runner.engines)})"
            ),
        )


def read_artifact(artifact_dir: Path) -> dict:
    """``artifact.json`` of ``artifact_dir``, checked against its schema (a compile folder may
    come from another job or machine: its ``file`` names what is hashed, copied and loaded,
    and ``../../x`` would be read from outside the folder)."""
    from tango_ci.contracts import schema_problem
    from tango_ci.rundir import display, read_json

    path = Path(artifact_dir) / ARTIFACT
    built = read_json(path)
    problem = schema_problem("artifact", built)
    if problem is not None:
        raise TangoError(f"{display(path)}: {problem}; nothing was written")
    return built


def load_artifact(artifact_dir: Path, threads: int | None = None) -> Predictor:
    """Load any built artifact, whichever backend made it (its record checked first)."""
    engine = read_artifact(artifact_dir)["engine"]
    return get_compiler(engine).load(Path(artifact_dir), threads)


__all__ = [
    "ARTIFACT",
    "AUTO",
    "BaseCompiler",
    "BuildRequest",
    "Capabilities",
    "Predictor",
    "PyTorchPredictor",
    "auto_candidates",
    "capabilities",
    "check_request",
    "get_compiler",
    "load_artifact",
    "read_artifact",
]
