"""Stage records: typed, versioned, schema-checked; run folders checked as data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tango_ci.contracts import RecordError, TrainedModel, upgrade_trained_model
from tango_ci.plugins import get_task, register_task
from tango_ci.rundir import read_record, write_record
from tango_ci.tasks import QualityMetric

RECORD = TrainedModel(
    task="detection",
    family="yolov8",
    name="yolov8n-d0.5-w0.75-96",
    architecture="yolov8n-d0.5-w0.75-96",
    image_size=96,
    classes=("a", "b"),
    shape={"scale": "n", "depth": 0.5, "width": 0.75},
    trial=3,
)


def test_a_record_round_trips_and_carries_its_version(tmp_path: Path) -> None:
    path = write_record(tmp_path, RECORD)
    assert json.loads(path.read_text())["schema_version"] == 1
    assert read_record(TrainedModel, tmp_path) == RECORD


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"schema_version": 2}, "at schema_version"),
        ({"name": "[link](http://x)"}, "at name"),
        ({"image_size": 1e9}, "at image_size"),
        ({"surprise": 1}, "at the top level"),
    ],
)
def test_a_record_that_breaks_its_schema_is_refused(tmp_path: Path, change, where) -> None:
    (tmp_path / "model.json").write_text(json.dumps(RECORD.to_json() | change))
    with pytest.raises(RecordError, match=f"model.json: {where}"):
        read_record(TrainedModel, tmp_path)


def test_model_json_of_earlier_versions_is_upgraded() -> None:
    old = {"family": "resnet", "level": "xs", "classes": ["a", "b"], "image_size": 32}
    record = TrainedModel.from_json(upgrade_trained_model(old), "old")
    assert (record.task, record.name, record.shape) == (
        "classification",
        "resnet-xs",
        {"level": "xs"},
    )
    old_detection = {"task": "detection", "family": "yolo11", "classes": ["a"], "image_size": 64}
    assert TrainedModel.from_json(upgrade_trained_model(old_detection), "old").task == "detection"


def test_detection_versions_follow_family_and_scale() -> None:
    assert get_task("detection").lineage(RECORD) == "yolov8n"
    assert (
        get_task("classification").lineage(
            TrainedModel.from_json(
                upgrade_trained_model(
                    {"family": "resnet", "level": "s", "classes": ["a"], "image_size": 32}
                ),
                "x",
            )
        )
        == "resnet-s"
    )


def test_a_task_whose_quality_falls_as_it_improves_is_refused() -> None:
    class LowerIsBetter(type(get_task("classification"))):
        name = "regression"
        quality = QualityMetric("rmse", "RMSE", higher_is_better=False)

    with pytest.raises(ValueError, match="lower is better is not supported"):
        register_task(LowerIsBetter())
