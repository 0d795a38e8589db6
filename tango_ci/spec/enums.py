"""The schema enums that come from the plug-in tables, so the tables stay the one source.

``schemas/*.schema.json`` carry these enums for outside tools (a test keeps them equal to the
built-in tables); validation replaces them with the live tables, which include plug-ins.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from tango_ci.plugins import ENGINES, PRECISIONS, TASKS

#: the gate metric every task has: the target's latency at its percentile
LATENCY_METRIC = "latency_ms"
#: ``engine: auto`` lets the device choose among its engines
AUTO_ENGINE = "auto"


def _union(attribute: str) -> list[str]:
    values: list[str] = []
    for task in TASKS.all().values():
        values += [v for v in getattr(task, attribute) if v not in values]
    return values


ENUMS: dict[str, dict[tuple[str, ...], Callable[[], list[Any]]]] = {
    "project": {
        ("properties", "task"): lambda: list(TASKS.names()),
        ("$defs", "data", "properties", "format"): lambda: _union("data_formats"),
        ("$defs", "search", "properties", "families", "items"): lambda: [
            *_union("families"),
            *_union("elastic_families"),
        ],
        ("$defs", "target", "properties", "engine"): lambda: [*ENGINES.names(), AUTO_ENGINE],
        ("$defs", "target", "properties", "precision"): lambda: list(PRECISIONS),
        ("$defs", "gate", "properties", "metric"): lambda: [
            *_union("gate_metrics"),
            LATENCY_METRIC,
            None,
        ],
    },
    "runner": {
        ("properties", "precisions", "items"): lambda: list(PRECISIONS),
        ("$defs", "engine", "properties", "name"): lambda: list(ENGINES.names()),
    },
}


def registry_enums(kind: str) -> dict[tuple[str, ...], list[Any]]:
    """Where in schema ``kind`` an enum comes from a table, and the table's values now."""
    return {path: values() for path, values in ENUMS.get(kind, {}).items()}


def with_registry_enums(kind: str, schema: dict) -> dict:
    """A copy of ``schema`` with every table-backed enum set from the live tables (the cached
    original stays as the file says: validators built for other tables share it)."""
    schema = copy.deepcopy(schema)
    for path, values in registry_enums(kind).items():
        node = schema
        for key in path:
            node = node[key]
        node["enum"] = values
    return schema
