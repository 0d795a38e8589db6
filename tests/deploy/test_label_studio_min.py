"""`tango label import` of Label Studio's JSON-MIN export (one flat record per annotation): the
same boxes and classes as the full JSON export of the same annotations, the newest record of a
task counting, and what the full export rejects rejected here too (it was read as tasks
without data, every record rejected)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tango_ci.labelling.importing import import_labels
from tests.deploy.test_label_exports import LABELS, _image, _labels, _ls, _rect, _task

FACTS = {"annotator": "a@example.org", "lead_time": 3.2}


def _record(image: str, number: int, when: str = "2024-01-01T00:00:00Z", **controls) -> dict:
    return {
        "image": image,
        "id": number,
        **controls,
        **FACTS,
        "annotation_id": number * 10,
        "created_at": when,
        "updated_at": when,
    }


def _min(folder: Path, records: list) -> Path:
    path = folder / "export-min.json"
    path.write_text(json.dumps(records))
    return path


@pytest.fixture
def queue(tmp_path: Path) -> Path:
    folder = tmp_path / "queue"
    for shade, name in enumerate(("a", "b", "c")):
        _image(folder / "images" / f"{name}.png", shade)
    return folder


def _region(labels: list[str], x, y, w, h, kind: str = "rectanglelabels") -> dict:
    size = {"original_width": 100, "original_height": 50}
    return {"x": x, "y": y, "width": w, "height": h, "rotation": 0, kind: labels, **size}


def test_boxes_are_those_of_the_full_export(queue: Path, tmp_path: Path) -> None:
    records = [
        _record("/data/upload/3/0a1b2c3d-a.png", 1, label=[_region(["square"], 10, 20, 30, 40)]),
        _record("images/b.png", 2, label=[_region(["circle"], 5, 5, 10, 10)]),
    ]
    done = import_labels(_min(queue, records), tmp_path / "min", LABELS, detection=True)
    full = [
        _task("/data/upload/3/0a1b2c3d-a.png", [_rect(["square"], 10, 20, 30, 40)]),
        _task("images/b.png", [_rect(["circle"], 5, 5, 10, 10)]),
    ]
    import_labels(_ls(queue, full), tmp_path / "full", LABELS, detection=True)
    assert (done["imported"], done["rejected"]) == (2, [])
    for stem in ("a", "b"):
        assert _labels(tmp_path / "min", stem) == _labels(tmp_path / "full", stem)
    assert _labels(tmp_path / "min", "a") == "1 0.250000 0.400000 0.300000 0.400000\n"


def test_a_polygon_or_an_unlabelled_rectangle_rejects_its_record(queue, tmp_path) -> None:
    records = [
        _record("images/a.png", 1, label=[_region(["square"], 10, 10, 20, 20)]),
        _record(
            "images/b.png",
            2,
            label=[{"points": [[1, 1], [9, 1], [5, 9]], "polygonlabels": ["circle"]}],
        ),
        _record("images/c.png", 3, box=[{"x": 1, "y": 1, "width": 5, "height": 5}]),
    ]
    done = import_labels(_min(queue, records), tmp_path / "data", LABELS, detection=True)
    assert done["imported"] == 1
    assert [line.split("export-min.json: ")[1] for line in done["rejected"]] == [
        "record 1: has a polygon; only rectangles are imported as boxes",
        "record 2: has a rectangle with no label",
    ]


def test_classes_come_from_the_newest_record_of_each_task(queue, tmp_path) -> None:
    records = [  # newest first, as JSON-MIN lists a task's annotations
        _record("images/a.png", 1, "2024-03-01T00:00:00Z", choice="square"),
        _record("images/a.png", 1, "2024-01-01T00:00:00Z", choice="circle"),
        _record("images/b.png", 2, choice={"choices": ["circle", "square"]}),
        {"image": "images/c.png", "id": 3},  # never annotated
    ]
    data = tmp_path / "data"
    done = import_labels(_min(queue, records), data, LABELS, detection=False)
    assert done["imported"] == 1 and (data / "square" / "a.png").is_file()
    assert not (data / "circle" / "a.png").exists()
    assert [line.split("export-min.json: ")[1] for line in done["rejected"]] == [
        "record 2: has 2 choices ('circle', 'square'); an image gets one class",
        "record 3: no image or no annotation",
    ]


def test_a_text_field_beside_the_choice_is_said_not_guessed(queue, tmp_path) -> None:
    """A field of the task's data looks like a single choice: the queue's 'label' control is
    read first; without it, two candidates reject the record."""
    records = [
        _record("images/a.png", 1, label="circle", camera="dock-3"),
        _record("images/b.png", 2, species="circle", camera="dock-3"),
    ]
    data = tmp_path / "data"
    done = import_labels(_min(queue, records), data, LABELS, detection=False)
    assert done["imported"] == 1 and (data / "circle" / "a.png").is_file()
    assert done["rejected"][0].endswith(
        "record 1: has choices of 2 controls ('camera', 'species') and none is named 'label' "
        "(the class's control in the queue's tasks)"
    )


def test_a_record_of_a_task_never_annotated_gives_no_class(queue, tmp_path) -> None:
    """Label Studio writes a record for a task without annotations, its data's text fields
    beside an empty annotation_id: a field naming a class is no choice."""
    never = {"image": "images/b.png", "id": 2, "caption": "circle", "annotation_id": None}
    records = [_record("images/a.png", 1, choice="square"), never | dict.fromkeys(FACTS)]
    data = tmp_path / "data"
    done = import_labels(_min(queue, records), data, LABELS, detection=False)
    assert done["imported"] == 1 and not (data / "circle").exists()
    assert done["rejected"][0].endswith("record 1: no image or no annotation")


def test_a_rectangle_beside_its_labels_is_one_labelled_box(queue, tmp_path) -> None:
    """<Rectangle> and <Labels> controls write each region under both, without an id to pair
    them: the full export pairs them by id, JSON-MIN by geometry."""
    where = {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0}
    records = [_record("images/a.png", 1, box=[where], lbl=[where | {"labels": ["circle"]}])]
    data = tmp_path / "data"
    done = import_labels(_min(queue, records), data, LABELS, detection=True)
    assert (done["imported"], done["rejected"]) == (1, [])
    assert _labels(data, "a") == "0 0.250000 0.400000 0.300000 0.400000\n"


def test_an_unlabelled_ellipse_rejects_its_record_as_in_the_full_export(queue, tmp_path):
    ellipse = {"x": 50, "y": 50, "radiusX": 5, "radiusY": 5, "rotation": 0}
    records = [_record("images/a.png", 1, shape=[ellipse])]
    done = import_labels(_min(queue, records), tmp_path / "data", LABELS, detection=True)
    assert done["imported"] == 0
    assert done["rejected"][0].endswith(
        "record 0: has an ellipse; only rectangles are imported as boxes"
    )
