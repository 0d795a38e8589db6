"""Hostile search summaries: a run folder downloaded from another job carries its search
summary as data; a field in another shape must not fail the report or run as anything."""

from __future__ import annotations

import pytest

from tango_ci.stages.report import _tied_line

BEST = {"score_label": "val accuracy"}


@pytest.mark.parametrize(
    "tied", ["resnet-m", {"keys": "resnet-m"}, {"keys": []}, ["resnet-m"], {"margin": 0.1}, 7]
)
def test_a_tie_in_another_shape_says_nothing(tied) -> None:
    assert _tied_line(tied, BEST) == []


def test_odd_entries_are_printed_as_text_not_formatted_or_evaluated() -> None:
    line = "".join(_tied_line({"keys": [1, None, "{__import__}"], "margin": "x"}, BEST))
    assert "from 1, None, {__import__}" in line and "within x" in line


@pytest.mark.parametrize(
    "rounds",
    ["x", {"epochs": 6}, [7], [{"epochs": 6, "scores": [0.3]}], [{"scores": "resnet-s"}], None],
)
def test_finals_in_another_shape_say_nothing(rounds) -> None:
    from tango_ci.stages.report import _finals_line

    assert _finals_line(rounds) == []


def test_odd_final_scores_are_printed_as_text_and_sorted_last() -> None:
    from tango_ci.stages.report import _finals_line

    line = "".join(_finals_line([{"epochs": "{e}", "scores": {"a": "high", "b": 0.5}}]))
    assert "after {e} epochs b 0.5, a high" in line
    # a tie with odd epochs is text too
    assert "even after [] epochs" in "".join(_tied_line({"keys": ["a"], "epochs": []}, BEST))
