"""How a promotion's outcome is told: one text for `tango ci promote` and the local forge."""

from __future__ import annotations

from tango_ci.gitops.promote import promotion_lines


def test_nothing_promoted_is_said() -> None:
    assert promotion_lines([]) == ["nothing to promote: every merged report is registered already"]


def test_each_target_and_a_failed_gate_are_told() -> None:
    outcome = [
        {
            "project": "a",
            "report": "c0ffee",
            "run": "run-a",
            "passed": False,
            "promoted": [
                {"name": "a-cpu", "skipped": "gate failed"},
                {
                    "name": "a-gpu",
                    "version": "v1.1.0",
                    "why": "architecture x -> y (minor)",
                    "tags": ["a-gpu#prod#2", "a-gpu@v1.1.0"],
                },
            ],
        }
    ]
    assert promotion_lines(outcome) == [
        "a: the gate failed in run run-a; only the targets that passed are promoted",
        "a-cpu: skipped (gate failed)",
        "a-gpu: v1.1.0 (architecture x -> y (minor)) -> prod",
    ]
    assert promotion_lines(outcome, stage="staging")[-1].endswith("-> staging")
