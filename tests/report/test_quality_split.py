"""The report says which split each target's quality was measured on, and how many images."""

from __future__ import annotations

import pytest

from tango_ci.stages.report import split_words


@pytest.mark.parametrize(
    ("split", "fraction", "words"),
    [
        ("test", 0.15, "test split, 30 images, unseen by search and training"),
        ("val", 0.0, "validation split, 30 images (no test split: data.split.test is 0)"),
        ("val", 0.15, "validation split, 30 images (no test split: the data stage made none)"),
    ],
)
def test_the_report_says_which_split_and_how_many_images(
    split: str, fraction: float, words: str
) -> None:
    metrics = {"quality": {"split": split, "images": 30}, "task_metrics": {}}
    assert split_words(metrics, fraction) == words
