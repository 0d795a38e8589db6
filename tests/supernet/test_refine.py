"""The climb after NSGA-II: one-step-larger neighbours of a subnet, and a climb that stops at
the budget's edge."""

from __future__ import annotations

import time

from tango_ci.models import SubnetSpace, get_elastic_family
from tango_ci.supernet.refine import climb, larger_neighbours


def _space(family: str) -> SubnetSpace:
    return get_elastic_family(family).space(32, (24, 32))


def test_resnet_neighbours_differ_by_one_step_in_one_choice() -> None:
    space = _space("ofa-resnet")
    config = {"resolution": 24, "depth": [1, 3, 2, 1], "width": 0.5}
    keys = {space.key(c) for c in larger_neighbours(space, config)}
    assert keys == {
        "r32-d1321-w0.5",  # resolution
        "r24-d1321-w0.75",  # width
        "r24-d2321-w0.5",
        "r24-d1331-w0.5",
        "r24-d1322-w0.5",  # one more block; stage 1 is at its deepest already
    }
    assert larger_neighbours(space, space.largest()) == []


def test_mobilenet_neighbours_grow_a_stage_with_its_last_block() -> None:
    space = _space("ofa-mobilenetv3")
    config = space.smallest()
    blocks = config["depth"][0]
    config["expand"][0] = [max(space.expands)] * blocks
    config["kernel"][0] = [max(space.kernels)] * blocks
    neighbours = larger_neighbours(space, config)
    deeper = [c for c in neighbours if c["depth"][0] == config["depth"][0] + 1]
    assert len(deeper) == 1
    # the new block copies the stage's last
    assert deeper[0]["expand"][0] == [max(space.expands)] * (blocks + 1)
    assert deeper[0]["kernel"][0] == [max(space.kernels)] * (blocks + 1)
    # stage 0's blocks are at their largest expand and kernel: no per-block step there
    same_depth = [c for c in neighbours if c["depth"] == config["depth"]]
    assert all(c["expand"][0] == config["expand"][0] for c in same_depth)
    assert all(c["kernel"][0] == config["kernel"][0] for c in same_depth)
    # one step per block of the other stages, in expand and in kernel, and the resolution
    others = sum(config["depth"][1:])
    assert len(same_depth) == 2 * others + 1
    for other in same_depth:  # each differs from the start in exactly one choice
        changed = [k for k in config if other[k] != config[k]]
        assert len(changed) == 1, changed
    assert len(neighbours) == len(same_depth) + len(config["depth"])  # one deeper per stage


class _Landscape:
    """Subnets scored from their config: accuracy and latency grow with every choice."""

    def __init__(self, space: SubnetSpace, budget_ms: float) -> None:
        self.space, self.budget_ms, self.samples = space, budget_ms, {}

    def score(self, config: dict) -> dict:
        config = self.space.validate(config)
        key = self.space.key(config)
        if key not in self.samples:
            size = sum(config["depth"]) * config["width"] * config["resolution"] / 32
            self.samples[key] = {
                "key": key,
                "config": config,
                "accuracy": 1 - 1 / (1 + size),
                "latency_ms": size / 10,
                "feasible": size / 10 <= self.budget_ms,
            }
        return self.samples[key]


def test_the_climb_ends_at_the_budgets_edge() -> None:
    space = _space("ofa-resnet")
    landscape = _Landscape(space, budget_ms=0.5)
    start = landscape.score(space.smallest())  # size 4 * 0.5 * 0.75 = 1.5: 0.15 ms
    result = climb(landscape, start, time.perf_counter() + 60, seed=0)
    end = landscape.samples[result["to"]]
    assert end["feasible"] and end["latency_ms"] > start["latency_ms"]
    assert result["steps"] and result["steps"][-1] == result["to"]
    assert result["stopped"].startswith("no larger neighbour")
    # at the edge: every larger neighbour of the end breaks the budget
    for config in larger_neighbours(space, end["config"]):
        assert not landscape.score(config)["feasible"]
    assert result["scored"] == len(landscape.samples) - 1


def test_the_climb_stops_at_its_deadline() -> None:
    space = _space("ofa-resnet")
    landscape = _Landscape(space, budget_ms=10.0)
    start = landscape.score(space.smallest())
    result = climb(landscape, start, time.perf_counter() - 1, seed=0)
    assert result == {
        "from": start["key"],
        "to": start["key"],
        "steps": [],
        "scored": 0,
        "stopped": "time budget reached",
    }
