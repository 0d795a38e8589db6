"""A specialisation's result.json downloaded with a run is data: a field in another shape must
not fail the report, and text in it is printed, never formatted or evaluated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tango_ci.rundir import RunDir
from tango_ci.supernet.report import specialise_lines

RESULT = {
    "chosen": {"architecture": "ofa-resnet r32 d2-2-2-1 w1", "accuracy": 0.9, "latency_ms": 0.4},
    "budget": {"latency_ms": 0.5, "percentile": "p95"},
    "finetune_epochs": 4,
    "val_accuracy": 0.93,
    "latency_source": "measured",
    "runner": "local-cpu",
    "latency_source_why": "runner check passed here",
    "subnets_scored": 41,
    "seconds": 50.2,
    "climb": {"from": "r32-d2221-w1", "to": "r32-d2321-w1", "steps": ["r32-d2321-w1"]},
}


def _lines(tmp_path: Path, result: object) -> str:
    run = RunDir(tmp_path / "run")
    folder = run.stage_dir("specialise") / "cpu"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps(result))
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return "\n".join(specialise_lines(run, "cpu", out)[0])


def test_the_chosen_subnet_and_its_climb_are_reported(tmp_path: Path) -> None:
    text = _lines(tmp_path, RESULT)
    assert "**ofa-resnet r32 d2-2-2-1 w1**" in text and "fine-tuned 4 epochs to 0.9300" in text
    assert "took 1 step to r32-d2321-w1" in text


@pytest.mark.parametrize(
    "result",
    [
        [],
        "x",
        RESULT | {"chosen": "ofa-resnet"},
        RESULT | {"chosen": RESULT["chosen"] | {"accuracy": "high"}},
        RESULT | {"seconds": None},
        {k: v for k, v in RESULT.items() if k != "budget"},
    ],
)
def test_a_result_in_another_shape_is_named_not_raised(tmp_path: Path, result: object) -> None:
    assert "specialise/cpu/result.json is not in the expected shape" in _lines(tmp_path, result)


@pytest.mark.parametrize("climb", ["up", {"steps": "r32"}, None, 7])
def test_an_odd_climb_says_nothing(tmp_path: Path, climb: object) -> None:
    text = _lines(tmp_path, RESULT | {"climb": climb})
    assert "climb" not in text and "Specialised subnet" in text


def test_climb_text_is_printed_not_formatted(tmp_path: Path) -> None:
    climb = {"from": "{__import__}", "to": "{0}", "steps": [1, 2]}
    assert "({__import__}) a climb" in _lines(tmp_path, RESULT | {"climb": climb})
    stuck = {"steps": [], "stopped": "time budget reached"}
    assert "No time was left to climb" in _lines(tmp_path, RESULT | {"climb": stuck})
