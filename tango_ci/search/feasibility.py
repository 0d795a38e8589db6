"""Target awareness for the search: the measuring itself lives in
:mod:`tango_ci.bench.feasibility`, where the train stage's baselines use it too (``train`` may
not import ``search``, which imports ``train``)."""

from __future__ import annotations

from tango_ci.bench.feasibility import (
    NEAR_LIMIT,
    QUICK,
    SECOND_LOOK,
    budget_violations,
    busy_host_note,
    describe_sources,
    latency_sources,
    measure_candidate,
    second_look_reason,
)
from tango_ci.bench.latency import GATE

__all__ = [
    "GATE",
    "NEAR_LIMIT",
    "QUICK",
    "SECOND_LOOK",
    "budget_violations",
    "busy_host_note",
    "describe_sources",
    "latency_sources",
    "measure_candidate",
    "second_look_reason",
]
