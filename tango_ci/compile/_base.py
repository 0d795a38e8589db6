"""The compile backend interface: a capability table as data, build, and load."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

ARTIFACT = "artifact.json"  # every backend writes this manifest beside its files

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from tango_ci.spec import RunnerSpec, TargetSpec


@dataclass(frozen=True)
class Capabilities:
    """What a backend can build, declared as data so requests are checked before any work.

    ``precisions`` maps an accelerator kind (``none`` is a plain CPU) to the precisions the
    engine offers there; an accelerator kind missing from it is one the engine cannot use.
    """

    engine: str
    precisions: Mapping[str, frozenset[str]]
    dynamic_batch: bool
    packages: tuple[str, ...]
    install_hint: str = ""
    notes: str = ""
    #: False where a build takes minutes and an untuned one never wins (TVM on CPUs): the
    #: search then times such an engine only when a target offers nothing else
    quick_build: bool = True
    #: distributions to ask for the engine's version (the first one installed answers)
    distributions: tuple[str, ...] = ()
    #: True where the backend builds from the trained network (``options["model_dir"]``),
    #: not from the ONNX file alone: a bare ONNX block cannot be built by it
    needs_network: bool = False
    #: True where ``engine: auto`` searches int8 build recipes on the device
    #: (:mod:`tango_ci.bench.optimise`; the backend builds any :class:`Recipe`)
    recipe_search: bool = False
    #: ways of running one artifact that ``engine: auto`` times against each other on a CPU
    #: (the backend's ``options["mode"]``), fastest kept
    timed_modes: tuple[str, ...] = ()

    def refusal(self, precision: str, accelerator: str) -> str | None:
        """Why ``precision`` on ``accelerator`` can't be served, or None when it can."""
        if accelerator not in self.precisions:
            kinds = ", ".join(sorted(self.precisions))
            return f"{self.engine} runs on accelerator kinds {kinds}, not on '{accelerator}'"
        offered = self.precisions[accelerator]
        if precision not in offered:
            where = "a CPU" if accelerator == "none" else f"'{accelerator}'"
            return f"{self.engine} offers {', '.join(sorted(offered))} on {where}, not {precision}"
        return None


class Predictor(abc.ABC):
    """A loaded artifact: one batch in, the network's outputs out."""

    @abc.abstractmethod
    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run one batch (N, C, H, W float32) and return the outputs as numpy arrays."""

    def close(self) -> None:
        """Release engine resources; optional."""


@dataclass(frozen=True)
class BuildRequest:
    onnx_path: Path
    out_dir: Path
    target: TargetSpec
    runner: RunnerSpec
    calibration: Any = None  # numpy array (N, C, H, W) for int8
    options: Mapping[str, Any] = field(default_factory=dict)


class BaseCompiler(abc.ABC):
    capabilities: Capabilities

    @abc.abstractmethod
    def build(self, request: BuildRequest) -> dict:
        """Build the artifact into ``request.out_dir``; return the manifest's backend fields."""

    @abc.abstractmethod
    def load(self, artifact_dir: Path, threads: int | None = None) -> Predictor:
        """Load a built artifact for inference."""

    def runner_problem(self, entry: Mapping[str, Any], accelerator: str) -> tuple[str, str] | None:
        """What is wrong with this engine's entry in a runner file, as (field, message)."""
        return None

    def probe(self, accelerator: Mapping[str, Any]) -> dict[str, Any]:
        """Facts about this host's install that a runner file records (``tango runner
        probe``), beyond name and version; the engine is importable when this is called."""
        return {}
