"""The built-in tasks declare what the rest of the package asks them."""

from __future__ import annotations

import pytest

from tango_ci.exceptions import UnknownNameError
from tango_ci.plugins import TASKS, get_task


def test_metric_labels_say_what_a_reader_expects() -> None:
    detection = get_task("detection")
    assert [detection.metric_label(m) for m in ("map50", "map50_95")] == ["mAP50", "mAP50-95"]
    assert get_task("classification").metric_label("accuracy") == "accuracy"
    assert detection.metric_label("latency_ms") == "latency_ms"  # not the task's to name


def test_every_task_can_be_gated_on_its_own_quality() -> None:
    for task in TASKS.all().values():
        assert task.gate_metrics[0] == task.quality.name
        assert set(task.families) and set(task.data_formats)


def test_an_unknown_task_names_the_known_ones() -> None:
    with pytest.raises(
        UnknownNameError,
        match="unknown task 'segmentation'; valid names: classification, detection",
    ):
        get_task("segmentation")


def test_training_summaries_name_the_metric() -> None:
    assert (
        get_task("detection")
        .training_summary({"val_map50": 0.5, "val_map50_95": 0.3})
        .startswith("validation mAP50 0.5000, mAP50-95 0.3000")
    )
    assert (
        get_task("classification").training_summary({"val_accuracy": 0.9})
        == "validation accuracy 0.9000"
    )
