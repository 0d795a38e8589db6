"""The last part of a specialisation: climb to the budget's edge from the best subnet found.

NSGA-II's few generations sample the front between accuracy and latency sparsely, so the most
accurate subnet within the budget it finds often leaves part of the budget unused (in
``benchmarks/supernet.py`` the same subnet, at 0.47 ms, won a 0.39 ms and a 0.60 ms budget).
A hill climb closes the gap: from the most accurate subnet within every budget, score its
neighbours one step larger in one dimension (a higher resolution, one more block in a stage, a
wider width, a larger expand ratio or kernel in one block) and move to the first that is more
accurate and still within the budgets, until none is or the time is up.
"""

from __future__ import annotations

import copy
import random
import time
from typing import Any, Protocol

from tango_ci.models import SubnetSpace


class _Scorer(Protocol):
    space: SubnetSpace
    samples: dict[str, dict]  # the scored subnets by key

    def score(self, config: dict) -> dict: ...


def _step_up(value: Any, choices: list) -> Any | None:
    larger = sorted(c for c in choices if c > value)
    return larger[0] if larger else None


def larger_neighbours(space: SubnetSpace, config: dict) -> list[dict]:
    """Every subnet of ``space`` one step larger than ``config`` in exactly one choice."""
    config = space.validate(config)
    dims = space.dimensions
    found: list[dict] = []

    def add(change) -> None:
        candidate = copy.deepcopy(config)
        change(candidate)
        found.append(space.validate(candidate))

    up = _step_up(config["resolution"], dims["resolution"])
    if up is not None:
        add(lambda c: c.__setitem__("resolution", up))
    if "width" in dims and (wider := _step_up(config["width"], dims["width"])) is not None:
        add(lambda c: c.__setitem__("width", wider))
    per_block = [key for key in ("expand", "kernel") if key in dims]
    for stage, depth in enumerate(config["depth"]):
        deeper = _step_up(depth, dims["depth"][stage])
        if deeper is not None:

            def grow(c: dict, stage: int = stage, deeper: int = deeper) -> None:
                added = deeper - c["depth"][stage]
                c["depth"][stage] = deeper
                for key in per_block:  # the new blocks repeat the stage's last (depth >= 1)
                    c[key][stage] += c[key][stage][-1:] * added

            add(grow)
        for key in per_block:
            for block, value in enumerate(config[key][stage]):
                larger = _step_up(value, dims[key])
                if larger is not None:

                    def widen(c: dict, key=key, stage=stage, block=block, larger=larger) -> None:
                        c[key][stage][block] = larger

                    add(widen)
    return found


def climb(scorer: _Scorer, start: dict, deadline: float, seed: int) -> dict[str, Any]:
    """Hill-climb from the scored subnet ``start`` (within the budgets) until no larger
    neighbour is more accurate and within them, or ``time.perf_counter()`` passes
    ``deadline``; returns what it did (subnets scored, steps, where it ended)."""
    rng = random.Random(seed)
    current, scored, steps = start, 0, []
    stopped = "no larger neighbour is more accurate within the budgets"
    while True:
        neighbours = larger_neighbours(scorer.space, current["config"])
        rng.shuffle(neighbours)
        better = None
        for config in neighbours:
            if time.perf_counter() > deadline:
                stopped = "time budget reached"
                break
            scored += scorer.space.key(config) not in scorer.samples
            sample = scorer.score(config)
            if sample["feasible"] and sample["accuracy"] > current["accuracy"]:
                better = sample
                break
        if better is None:
            break
        steps.append(better["key"])
        current = better
    return {
        "from": start["key"],
        "to": current["key"],
        "steps": steps,
        "scored": scored,
        "stopped": stopped,
    }
