"""Typed records of what one stage hands to the next, each with a schema version.

A record is a frozen dataclass; it is written and read through :class:`~tango_ci.rundir.RunDir`
(``run.write_record`` / ``run.read_record``) and checked against its JSON Schema in
``schemas/run/`` when read, so CI jobs and outside tools can check run folders with the same
definition. Readers never guess a file's shape from which keys are present.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from tango_ci.exceptions import TangoError

SCHEMA_VERSION = 1

R = TypeVar("R", bound="Record")


class RecordError(TangoError):
    _template = "{source}: {reason}"


@dataclass(frozen=True)
class Record:
    """Base of every stage record: ``FILE`` in its stage folder, ``SCHEMA`` in schemas/run/."""

    FILE: ClassVar[str]
    SCHEMA: ClassVar[str]

    def to_json(self) -> dict:
        data = asdict(self)
        return {"schema_version": SCHEMA_VERSION, **_plain(data)}

    @classmethod
    def from_json(cls: type[R], data: Any, source: str) -> R:
        problem = schema_problem(cls.SCHEMA, data)
        if problem:
            raise RecordError(source=source, reason=problem)
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        for f in fields(cls):
            if f.name in values and isinstance(values[f.name], list):
                values[f.name] = tuple(values[f.name])
        return cls(**values)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class TrainedModel(Record):
    """A trained (or candidate) network: ``train/model.json``.

    ``name`` identifies the network in reports and the registry; ``shape`` holds the family's own knobs (a classification level; a YOLO scale with depth
    and width multipliers); only the task that wrote it reads inside it.
    """

    FILE: ClassVar[str] = "model.json"
    SCHEMA: ClassVar[str] = "trained-model"

    task: str
    family: str
    name: str  # short, for tags and tables: resnet-xs, yolov8n-d0.75-w0.5-96
    architecture: str  # for people: what the name stands for
    image_size: int
    classes: tuple[str, ...]
    shape: Mapping[str, Any] = field(default_factory=dict)
    parameters: int | None = None
    trial: int | None = None


@dataclass(frozen=True)
class Quality:
    """How good an artifact is, in the task's own metric (bench ``metrics.json['quality']``)."""

    name: str  # the metric's key, as the gate and the registry name it: accuracy, map50
    label: str  # as people read it: accuracy, mAP50
    value: float
    reference: float  # the same network in PyTorch fp32 on the same images
    higher_is_better: bool = True
    split: str = "val"  # "test", or "val" when the run has no test split
    images: int | None = None  # how many the split holds

    @property
    def drop(self) -> float:
        """How much worse than the reference (positive is worse, whichever the direction)."""
        return (
            (self.reference - self.value)
            if self.higher_is_better
            else (self.value - self.reference)
        )

    def to_json(self) -> dict:
        return {**asdict(self), "drop": self.drop}


@dataclass(frozen=True)
class GateDecision(Record):
    """The gate's verdict: ``gate/decision.json``."""

    FILE: ClassVar[str] = "decision.json"
    SCHEMA: ClassVar[str] = "gate-decision"

    passed: bool
    targets: Mapping[str, Any]
    gate_metric: str | None = None
    min_improvement: float = 0.0


# a wheel carries schemas/ as tango_ci/_schemas; a source checkout has it beside the package
_SCHEMA_FOLDERS = (
    Path(__file__).resolve().parent / "_schemas",
    Path(__file__).resolve().parents[1] / "schemas",
)


def schema_file(relative: str) -> Path:
    """A file of ``schemas/`` (``project.schema.json``, ``run/artifact.schema.json``)."""
    for folder in _SCHEMA_FOLDERS:
        if (folder / relative).is_file():
            return folder / relative
    raise FileNotFoundError(f"schema {relative} is missing from the installation")


def schema_path(name: str) -> Path:
    """The run-folder schema ``name`` (``schemas/run/<name>.schema.json``)."""
    return schema_file(f"run/{name}.schema.json")


def upgrade_trained_model(data: Any) -> Any:
    """``model.json`` as versions before schema 1 wrote it (artifacts built then still carry
    it), turned into a record; anything else is returned as it is, for the schema to judge."""
    if not isinstance(data, dict) or "schema_version" in data:
        return data
    shape = {k: data[k] for k in ("level", "scale", "depth", "width") if k in data}
    name = "-".join(str(data[k]) for k in ("family", "level") if k in data) or "unknown"
    return {
        "schema_version": SCHEMA_VERSION,
        # before schema 1 only detection wrote its task; classification was the default
        "task": data.get("task", "classification"),
        "family": data.get("family"),
        "name": name,
        "architecture": data.get("architecture", name),
        "image_size": data.get("image_size"),
        "classes": data.get("classes"),
        "shape": shape,
    }


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    folder = schema_path(name).parent
    schemas = [json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.schema.json")]
    registry = Registry().with_resources(  # bench results refer to the artifact schema
        (s["$id"], Resource.from_contents(s)) for s in schemas
    )
    return Draft202012Validator(
        json.loads(schema_path(name).read_text(encoding="utf-8")), registry=registry
    )


def schema_problem(name: str, data: Any) -> str | None:
    """The first way ``data`` breaks the run-folder schema ``name``, or None."""
    error = next(iter(sorted(_validator(name).iter_errors(data), key=lambda e: e.path)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the top level"
    return f"at {where}: {error.message[:200]} (schemas/run/{name}.schema.json)"


RECORDS: tuple[type[Record], ...] = (TrainedModel, GateDecision)

#: the hand-off files of a run folder and the schema each must meet
RUN_FILES = (
    ("search/best.json", "search-result"),
    ("train/model.json", "trained-model"),
    ("specialise/*/model.json", "trained-model"),
    ("compile/*/artifact.json", "artifact"),
    ("compile/*/*/artifact.json", "artifact"),
    ("bench/*/metrics.json", "bench-result"),
    ("gate/decision.json", "gate-decision"),
)
__all__ = [
    "RECORDS",
    "RUN_FILES",
    "SCHEMA_VERSION",
    "GateDecision",
    "Quality",
    "Record",
    "RecordError",
    "TrainedModel",
    "schema_file",
    "schema_problem",
    "upgrade_trained_model",
]
