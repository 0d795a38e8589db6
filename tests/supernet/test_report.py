"""The supernet section of the report from a downloaded run's records: fields of the wrong
type give a line saying so, never an exception that stops the report."""

from __future__ import annotations

import pytest

from tango_ci.supernet.report import supernet_lines

SEARCH = {"strategy": "supernet", "family": "mbv3", "smallest": "s", "largest": "l"}
TRAINING = {"epochs_run": 3, "val_accuracy": 0.9, "val_accuracy_smallest": 0.8}


def test_the_section_names_what_was_trained() -> None:
    lines = supernet_lines(SEARCH | {"resolutions": [160, 224]}, TRAINING)
    assert "at resolutions 160, 224" in lines[2] and "largest 0.9000" in lines[2]


@pytest.mark.parametrize(
    ("search", "training"),
    [
        ({}, {"val_accuracy": "0.9"}),
        ({}, {"config": ["distill"]}),
        ({"resolutions": 5}, {}),
        ({}, {"val_accuracy_smallest": 10**400}),
    ],
)
def test_a_field_of_the_wrong_type_gives_a_line_saying_so(search: dict, training: dict) -> None:
    lines = supernet_lines(SEARCH | search, TRAINING | training)
    assert lines == [
        "### Supernet",
        "",
        "(The supernet's records are not in the expected shape.)",
        "",
    ]
