"""The tables of pluggable kinds, one per kind: tasks and engines, found by name.

Everything else asks these tables; nothing outside a task's or an engine's own module compares
against its name, and the JSON Schemas' enums are tested against them.

Built-in entries are ``"module:Class"`` strings, imported and instantiated when first asked
for, as entry points are. So this module imports nothing of tango_ci's and sits below every
layer: the spec loader checks task names, families and engine capabilities through it, while
the implementations themselves sit above the stages they serve.

A plug-in is a module that registers instances with :func:`register_task` or
:func:`register_engine` when imported. It is found through the ``tango_ci.plugins`` entry-point
group of an installed distribution, or named in ``TANGO_CI_PLUGINS`` (comma-separated module
names), which also reaches the measuring subprocesses of bench. Both are the operator's
settings, never read from a project or a run folder.
"""

from __future__ import annotations

import os
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from tango_ci.exceptions import UnknownNameError

if TYPE_CHECKING:
    from tango_ci.compile import BaseCompiler
    from tango_ci.tasks import BaseTask

#: Numeric precisions an engine may offer; engines declare which ones in their capabilities.
PRECISIONS = ("fp32", "fp16", "bf16", "int8")

T = TypeVar("T")

PLUGINS_ENV = "TANGO_CI_PLUGINS"
ENTRY_POINT_GROUP = "tango_ci.plugins"
_plugins_loaded = False


def load_plugins() -> None:
    """Import every plug-in module once (they register themselves)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True  # before importing: a plug-in asks the tables while registering
    for point in entry_points(group=ENTRY_POINT_GROUP):
        point.load()
    for name in filter(None, (n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(","))):
        import_module(name)


class Table(Generic[T]):
    """Names to implementations of one kind, resolved lazily and kept once resolved."""

    def __init__(self, kind: str, entries: dict[str, str]) -> None:
        self.kind = kind
        self._entries: dict[str, Any] = dict(entries)
        self._builtin = tuple(entries)

    def names(self) -> tuple[str, ...]:
        load_plugins()
        return tuple(self._entries)

    def builtin_names(self) -> tuple[str, ...]:
        return self._builtin

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries

    def get(self, name: str) -> T:
        load_plugins()
        if name not in self._entries:
            raise UnknownNameError(kind=self.kind, name=name, valid=", ".join(self._entries))
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            entry = self._entries[name] = getattr(import_module(module), attribute)()
        return entry

    def all(self) -> dict[str, T]:
        return {name: self.get(name) for name in self.names()}

    def register(self, name: str, implementation: T) -> None:
        if name in self._entries and self._entries[name] is not implementation:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = implementation

    def unregister(self, name: str) -> None:
        if name in self._builtin:
            raise ValueError(f"{self.kind} '{name}' is built in")
        self._entries.pop(name, None)


TASKS: Table[BaseTask] = Table(
    "task",
    {
        "classification": "tango_ci.tasks.classification:ClassificationTask",
        "detection": "tango_ci.tasks.detection:DetectionTask",
    },
)

ENGINES: Table[BaseCompiler] = Table(
    "engine",
    {
        "onnxruntime": "tango_ci.compile._onnxruntime:OnnxRuntimeCompiler",
        "tvm": "tango_ci.compile._tvm:TvmCompiler",
        "tensorrt": "tango_ci.compile._tensorrt:TensorRtCompiler",
        "pytorch": "tango_ci.compile._pytorch:PyTorchCompiler",
    },
)


def get_task(name: str) -> BaseTask:
    return TASKS.get(name)


def get_engine(name: str) -> BaseCompiler:
    return ENGINES.get(name)


def register_task(task: BaseTask) -> None:
    if not task.quality.higher_is_better:
        # the search maximises it, and the gate and engine: auto judge drops, one way only
        raise ValueError(
            f"task '{task.name}': a quality metric where lower is better is not supported "
            "yet; give one where higher is better"
        )
    TASKS.register(task.name, task)


def register_engine(engine: BaseCompiler) -> None:
    ENGINES.register(engine.capabilities.engine, engine)


__all__ = [
    "ENGINES",
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV",
    "PRECISIONS",
    "TASKS",
    "Table",
    "get_engine",
    "get_task",
    "load_plugins",
    "register_engine",
    "register_task",
]
