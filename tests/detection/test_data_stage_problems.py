"""The data stage's refusal of a broken YOLO dataset lists a bounded number of problems and
then one line with how many there were, whatever their number."""

from __future__ import annotations

from pathlib import Path

import pytest

from tango_ci import api
from tango_ci.detection import data_stage
from tango_ci.detection.data_stage import DatasetError
from tests.conftest import write_project
from tests.detection.test_written_splits import NAMES, PROJECT, _image


def test_the_refusal_lists_the_first_problems_and_their_total(
    spec_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data_stage, "MAX_SHOWN_PROBLEMS", 3)
    project = write_project(spec_repo, "det", PROJECT.format(split="")).parent
    data = project / "data"
    for index in range(6):
        _image(data / f"images/train/t{index}.png", index, "7 0.5 0.5 0.2 0.2\n")
    _image(data / "images/val/v0.png", 10)
    (data / "data.yaml").write_text(f"path: .\ntrain: images/train\nval: images/val\n{NAMES}")
    with pytest.raises(DatasetError) as caught:
        api.run(project, until="data")
    assert [p.format() for p in caught.value.problems] == [
        *(
            f"labels/train/t{i}.txt:1:1: class 7 is not a class id of data.yaml (0..2)"
            for i in range(3)
        ),
        "data.yaml: ... and 3 more problem(s), 6 in all",
    ]
