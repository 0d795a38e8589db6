"""Frozen dataclasses that validated project and runner files become."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


# ----------------------------------------------------------------------------- runner
@dataclass(frozen=True)
class Accelerator:
    kind: str = "none"
    name: str | None = None
    compute_capability: str | None = None
    memory_mb: int | None = None


@dataclass(frozen=True)
class Hardware:
    arch: str
    cores: int
    memory_mb: int
    cpu: str | None = None
    threads: int | None = None
    accelerator: Accelerator = Accelerator()


@dataclass(frozen=True)
class OperatingSystem:
    name: str
    version: str | None = None


@dataclass(frozen=True)
class EngineInfo:
    name: str
    version: str | None = None
    target: str | None = None
    execution_providers: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunnerSpec:
    name: str
    labels: tuple[str, ...]
    hardware: Hardware
    os: OperatingSystem
    engines: tuple[EngineInfo, ...]
    precisions: tuple[str, ...]
    description: str | None = None
    path: Path | None = None

    def engine(self, name: str) -> EngineInfo | None:
        return next((e for e in self.engines if e.name == name), None)

    @property
    def threads(self) -> int:
        return self.hardware.threads or self.hardware.cores


# ----------------------------------------------------------------------------- project
@dataclass(frozen=True)
class SplitSpec:
    val: float = 0.2
    seed: int = 0
    test: float = 0.15


@dataclass(frozen=True)
class SynthSpec:
    kind: str = "shapes"
    images_per_class: int = 200
    size: int = 64
    seed: int = 0


@dataclass(frozen=True)
class DataSpec:
    path: str
    format: str
    image_size: int = 64
    split: SplitSpec = SplitSpec()
    max_bad_fraction: float = 0.01
    synth: SynthSpec | None = None
    resolved: Path | None = None  # absolute path, set by the loader


@dataclass(frozen=True)
class Baseline:
    family: str
    level: str


@dataclass(frozen=True)
class SupernetSpec:
    resolutions: tuple[int, ...] | None = None
    random_subnets: int = 2
    distill: bool = True
    progressive: bool = False


@dataclass(frozen=True)
class SearchSpec:
    strategy: str = "trials"
    families: tuple[str, ...] = ()
    baselines: tuple[Baseline, ...] = ()
    supernet: SupernetSpec = SupernetSpec()
    levels: tuple[str, ...] = ("xs", "s", "m")
    trials: int = 12
    timeout_s: float | None = None
    epochs: int = 3
    seed: int = 0
    sampler: str = "tpe"
    pruner: str = "median"
    image_sizes: tuple[int, ...] | None = None
    storage: str | None = None


@dataclass(frozen=True)
class TrainSpec:
    epochs: int = 10
    batch: int = 32
    lr: float = 0.01
    weight_decay: float = 1e-4
    patience: int = 5
    pretrained: str | None = None
    workers: int | None = None
    runner: str = "gpu-server"
    device: str = "auto"


@dataclass(frozen=True)
class ExportSpec:
    opset: int = 17
    simplify: bool = True
    tolerance: float = 1e-4


@dataclass(frozen=True)
class Constraints:
    latency_ms: float | None = None
    latency_percentile: str = "p95"
    memory_mb: float | None = None
    model_size_mb: float | None = None
    min_accuracy: float | None = None
    max_accuracy_drop: float = 0.02
    end_to_end_latency_ms: float | None = None


@dataclass(frozen=True)
class TargetSpec:
    name: str
    runner: str
    engine: str
    precision: str = "fp32"
    batch: int = 1
    calibration: str = "minmax"
    tuning_trials: int = 0
    optimise_seconds: float = 300.0
    constraints: Constraints = Constraints()


@dataclass(frozen=True)
class DeployThresholds:
    """What a device runs detection with (the evaluation's conf 0.001 wants every box)."""

    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 100


@dataclass(frozen=True)
class DetectionSpec:
    conf: float = 0.001
    iou: float = 0.7
    max_det: int = 300
    deploy: DeployThresholds = DeployThresholds()


@dataclass(frozen=True)
class SpecialiseSpec:
    population: int = 16
    generations: int = 4
    time_budget_s: float = 50.0
    calibration_images: int = 256
    finetune_epochs: int = 0


@dataclass(frozen=True)
class ChallengerSpec:
    """Champion/challenger on new labelled data and a frozen holdout (``gate.challenger``)."""

    new_data: str
    holdout: str | None = None
    margin: float = 0.0
    tolerance: float = 0.01
    new_resolved: Path | None = None  # absolute paths, set by the loader
    holdout_resolved: Path | None = None


@dataclass(frozen=True)
class GateSpec:
    metric: str | None = None
    min_improvement: float = 0.0
    challenger: ChallengerSpec | None = None


@dataclass(frozen=True)
class ProjectSpec:
    name: str
    task: str
    data: DataSpec
    targets: tuple[TargetSpec, ...]
    search: SearchSpec = SearchSpec()
    train: TrainSpec = TrainSpec()
    export: ExportSpec = ExportSpec()
    detection: DetectionSpec = DetectionSpec()
    gate: GateSpec = GateSpec()
    specialise: SpecialiseSpec = SpecialiseSpec()
    description: str | None = None
    path: Path | None = None  # the project.yaml
    runners: dict[str, RunnerSpec] = dataclasses.field(
        default_factory=dict, compare=False, hash=False
    )

    @property
    def folder(self) -> Path:
        assert self.path is not None
        return self.path.parent

    def target(self, name: str) -> TargetSpec:
        for target in self.targets:
            if target.name == name:
                return target
        from tango_ci.exceptions import UnknownNameError

        raise UnknownNameError(
            kind="target", name=name, valid=", ".join(t.name for t in self.targets)
        )


# ----------------------------------------------------------------------------- conversion
def from_dict(cls: type[T], data: dict[str, Any], **extra: Any) -> T:
    """Build dataclass ``cls`` from validated ``data``; lists become tuples."""
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name])
    kwargs.update(extra)
    return cls(**kwargs)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_dict(hint, value)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return tuple(_convert(item, v) for v in value)
    return value


def to_dict(obj: Any) -> Any:
    """JSON-ready form of a spec dataclass (paths become strings, runners are left out)."""
    if dataclasses.is_dataclass(obj):
        return {
            f.name: to_dict(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.name != "runners"
        }
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
