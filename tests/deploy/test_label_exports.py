"""`tango label import` of exports as Label Studio and CVAT really write them: shapes other
than rectangles, rotated rectangles, CVAT's images/ folder and zip, Label Studio's image
addresses, several annotations of one task, and rectangles a hair past the image."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from tango_ci.labelling.importing import import_labels

LABELS = ["circle", "square"]
W, H = 100, 50  # the images' size: percent and pixels differ per axis


def _image(path: Path, shade: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (W, H), (shade, 100, 200)).save(path)


def _rect(label: list[str], x, y, w, h, rotation=0.0, identity="r1") -> dict:
    value = {"x": x, "y": y, "width": w, "height": h, "rotation": rotation}
    return {"id": identity, "type": "rectanglelabels", "value": value | {"rectanglelabels": label}}


def _task(image: str, result: list, **data) -> dict:
    return {"data": {"image": image, **data}, "annotations": [{"id": 1, "result": result}]}


def _ls(folder: Path, tasks: list) -> Path:
    path = folder / "export.json"
    path.write_text(json.dumps(tasks))
    return path


def _cvat(folder: Path, images: str, name: str = "annotations.xml") -> Path:
    path = folder / name
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version>'
        f"{images}</annotations>\n"
    )
    return path


def _labels(data: Path, stem: str) -> str:
    return (data / "labels" / "train" / f"{stem}.txt").read_text()


@pytest.fixture
def queue(tmp_path: Path) -> Path:
    folder = tmp_path / "queue"
    for shade, name in enumerate(("a", "b")):
        _image(folder / "images" / f"{name}.png", shade)
    return folder


POLYGON = {"points": [[10, 10], [50, 10], [30, 60]], "polygonlabels": ["circle"]}


@pytest.mark.parametrize(
    ("result", "shape"),
    [
        ({"type": "polygonlabels", "value": POLYGON}, "a polygon"),
        ({"type": "keypointlabels", "value": {"x": 5, "y": 5, "keypointlabels": ["circle"]}}, "a keypoint"),
        ({"type": "brushlabels", "value": {"rle": [1, 2], "brushlabels": ["circle"]}}, "a brush mask"),
        ({"type": "ellipselabels", "value": {"x": 5, "y": 5, "radiusX": 2, "radiusY": 2}}, "an ellipse"),
        ({"id": "p", "type": "labels", "value": {"points": [[1, 1]], "labels": ["circle"]}}, "a polygon"),
    ],
)  # fmt: skip
def test_a_label_studio_shape_other_than_a_rectangle_rejects_its_task(
    queue, tmp_path, result, shape
):
    """It was imported as an image without objects: every object on it taught as background."""
    data = tmp_path / "data"
    tasks = [
        _task("images/a.png", [_rect(["square"], 10, 10, 20, 20), result]),
        _task("images/b.png", [_rect(["square"], 10, 10, 20, 20)]),
    ]
    done = import_labels(_ls(queue, tasks), data, LABELS, detection=True)
    assert done["imported"] == 1 and len(done["rejected"]) == 1
    assert done["rejected"][0].endswith(
        f"task 0: has {shape}; only rectangles are imported as boxes"
    )
    assert not (data / "labels" / "train" / "a.txt").exists() and _labels(data, "b")


@pytest.mark.parametrize(
    ("element", "shape"),
    [
        ('<polygon label="circle" points="10,10;40,10;25,40"/>', "a polygon"),
        ('<polyline label="circle" points="10,10;40,10"/>', "a polyline"),
        ('<points label="circle" points="10,10"/>', "points"),
        ('<ellipse label="circle" cx="70" cy="25" rx="10" ry="10"/>', "an ellipse"),
        ('<mask label="circle" rle="1, 2" left="0" top="0" width="2" height="1"/>', "a mask"),
        ('<cuboid label="circle" xtl1="1" ytl1="1" xbl1="1" ybl1="5"/>', "a cuboid"),
    ],
)
def test_a_cvat_shape_other_than_a_box_rejects_its_image(queue, tmp_path, element, shape):
    data = tmp_path / "data"
    box = '<box label="square" xtl="10" ytl="10" xbr="30" ybr="30"/>'
    xml = _cvat(
        queue,
        f'<image id="0" name="images/a.png" width="{W}" height="{H}">{box}{element}</image>'
        f'<image id="1" name="images/b.png" width="{W}" height="{H}">{box}</image>',
    )
    done = import_labels(xml, data, LABELS, detection=True)
    assert done["imported"] == 1
    assert done["rejected"] == [
        f"{xml}: image 0 (images/a.png): has {shape}; only rectangles are imported as boxes"
    ]


def test_a_rectangle_without_a_label_rejects_its_entry(queue, tmp_path) -> None:
    data = tmp_path / "data"
    unlabelled = [_rect([], 10, 10, 20, 20), _rect(["circle"], 50, 10, 20, 20, identity="r2")]
    done = import_labels(_ls(queue, [_task("images/a.png", unlabelled)]), data, LABELS, True)
    assert done["rejected"][0].endswith("task 0: has a rectangle with no label")
    xml = _cvat(
        queue,
        f'<image id="0" name="images/b.png" width="{W}" height="{H}">'
        '<box xtl="10" ytl="10" xbr="30" ybr="30"/></image>',
    )
    done = import_labels(xml, data, LABELS, detection=True)
    assert done["imported"] == 0 and done["rejected"][0].endswith("has a rectangle with no label")
    assert not (data / "images").exists()


def test_rotated_rectangles_become_the_upright_box_around_them(queue, tmp_path) -> None:
    """Label Studio turns a rectangle about its top-left corner, CVAT about its centre; both
    clockwise. Each is imported as the upright box around it, cut to the image, and counted."""
    data = tmp_path / "data"
    # 20 x 20 pixels at (40, 10), turned 90 degrees about (40, 10): x 20..40, y 10..30
    done = import_labels(
        _ls(queue, [_task("images/a.png", [_rect(["square"], 40, 20, 20, 40, rotation=90)])]),
        data,
        LABELS,
        detection=True,
    )
    assert done["imported"] == 1 and done["rotated"] == 1
    assert _labels(data, "a") == "1 0.300000 0.400000 0.200000 0.400000\n"
    # 40 x 10 pixels centred on (30, 25), turned 90 degrees: x 25..35, y 5..45
    xml = _cvat(
        queue,
        f'<image id="0" name="images/b.png" width="{W}" height="{H}"><box label="circle" '
        'xtl="10" ytl="20" xbr="50" ybr="30" rotation="90.0"/></image>',
    )
    done = import_labels(xml, data, LABELS, detection=True)
    assert done["rotated"] == 1
    assert _labels(data, "b") == "0 0.300000 0.500000 0.100000 0.800000\n"


def test_a_rotated_rectangle_past_the_edge_is_cut_to_the_image(queue, tmp_path) -> None:
    data = tmp_path / "data"
    # 20 x 10 pixels at (90, 20) turned 45 degrees: its corners reach x 82.9..104.1
    tasks = [_task("images/a.png", [_rect(["square"], 90, 40, 20, 20, rotation=45)])]
    done = import_labels(_ls(queue, tasks), data, LABELS, detection=True)
    assert done["imported"] == 1 and done["rotated"] == 1
    _, cx, _, w, h = (float(v) for v in _labels(data, "a").split())
    assert cx + w / 2 == pytest.approx(1.0) and 0 < cx - w / 2 < 0.9 and 0 < h < 1


def test_cvat_names_are_found_in_images_beside_the_export(queue, tmp_path) -> None:
    """CVAT for images 1.1 writes name="a.png" for images/a.png; a project's export keeps
    them in images/<subset>/."""
    data = tmp_path / "data"
    _image(queue / "images" / "Train" / "c.png", 9)
    box = '<box label="square" xtl="10" ytl="10" xbr="30" ybr="30"/>'
    xml = _cvat(
        queue,
        f'<image id="0" name="a.png" width="{W}" height="{H}">{box}</image>'
        f'<image id="1" name="c.png" subset="Train" width="{W}" height="{H}">{box}</image>',
    )
    done = import_labels(xml, data, LABELS, detection=True)
    assert (done["imported"], done["rejected"]) == (2, [])
    assert _labels(data, "a") == "1 0.200000 0.400000 0.200000 0.400000\n" and _labels(data, "c")


def test_the_queues_own_annotations_are_imported(tmp_path) -> None:
    """write_queue's annotations.xml names its images by their bare names, kept in images/."""
    import hashlib

    from tango_ci.labelling import write_queue

    kept, records = tmp_path / "kept", []
    kept.mkdir()
    for shade in (50, 150):
        Image.new("RGB", (96, 64), (shade, 0, 0)).save(tmp_path / "x.png")
        digest = hashlib.sha256((tmp_path / "x.png").read_bytes()).hexdigest()
        (tmp_path / "x.png").rename(kept / f"{digest}.img")
        box = {"class": 1, "label": "square", "score": 0.4, "box": [10.0, 8.0, 40.0, 32.0]}
        records.append({"model_version": "v1", "input_hash": digest, "outputs": {"boxes": [box]}})
    write_queue(records, kept, tmp_path / "queue", 5, "entropy", LABELS)
    data = tmp_path / "data"
    done = import_labels(tmp_path / "queue" / "annotations.xml", data, LABELS, detection=True)
    assert (done["imported"], done["rejected"]) == (2, [])
    assert len(list((data / "labels" / "train").glob("*.txt"))) == 2


def test_a_cvat_zip_is_read_with_its_images(queue, tmp_path) -> None:
    data, archive = tmp_path / "data", tmp_path / "task.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(queue / "images" / "a.png", "images/a.png")
        zipped.writestr(
            "annotations.xml",
            f'<annotations><image id="0" name="a.png" width="{W}" height="{H}">'
            '<box label="circle" xtl="0" ytl="0" xbr="50" ybr="25"/></image></annotations>',
        )
    done = import_labels(archive, data, LABELS, detection=True)
    assert (done["imported"], done["rejected"]) == (1, [])
    assert _labels(data, "a") == "0 0.250000 0.250000 0.500000 0.500000\n"
    assert not any(p.name.startswith(".label-import-") for p in tmp_path.iterdir())


def test_label_studio_image_addresses_are_found_beside_the_export(queue, tmp_path) -> None:
    """An upload (/data/upload/<project>/<8 hex>-<name>), a local storage
    (/data/local-files/?d=<path>), a URL-encoded name, and the queue's input_hash."""
    _image(queue / "images" / "my cat.png", 7)
    digest = "ab" * 32
    _image(queue / "images" / f"{digest}.png", 8)
    _image(queue / "images" / "d.png", 6)
    choice = [{"type": "choices", "value": {"choices": ["circle"]}}]
    tasks = [
        _task("/data/upload/1/5c8f1d2e-a.png", choice),
        _task("/data/local-files/?d=images/b.png", choice),
        _task("images/my%20cat.png", choice),
        _task("/data/upload/3/0badf00d-renamed.png", choice, input_hash=digest),
        _task("http://localhost:8080/data/upload/2/1234abcd-d.png", choice),
    ]
    data = tmp_path / "data"
    done = import_labels(_ls(queue, tasks), data, LABELS, detection=False)
    assert (done["imported"], done["rejected"]) == (5, [])
    found = sorted(p.name for p in (data / "circle").iterdir())
    assert found == sorted(["a.png", "b.png", "my cat.png", f"{digest}.png", "d.png"])


def test_the_newest_annotation_counts_and_skipped_ones_never(queue, tmp_path) -> None:
    def annotation(label: str, identity: int, updated: str, cancelled: bool = False) -> dict:
        result = [{"type": "choices", "value": {"choices": [label]}}]
        return {
            "id": identity,
            "result": result,
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": updated,
            "was_cancelled": cancelled,
        }

    tasks = [
        {  # the newest first in the list, as Label Studio lists by id
            "data": {"image": "images/a.png"},
            "annotations": [
                annotation("square", 7, "2024-03-01T00:00:00Z"),
                annotation("circle", 3, "2024-01-02T00:00:00Z"),
            ],
        },
        {
            "data": {"image": "images/b.png"},
            "annotations": [
                annotation("circle", 1, "2024-01-01T00:00:00Z"),
                annotation("square", 2, "2024-05-01T00:00:00Z", cancelled=True),
            ],
        },
    ]
    data = tmp_path / "data"
    done = import_labels(_ls(queue, tasks), data, LABELS, detection=False)
    assert done["imported"] == 2
    assert (data / "square" / "a.png").is_file() and (data / "circle" / "b.png").is_file()


def test_a_flipped_rectangle_and_one_a_hair_past_the_edge_are_imported(queue, tmp_path):
    data = tmp_path / "data"
    tasks = [
        _task("images/a.png", [_rect(["square"], 60, 80, -40, -40)]),  # a resize past its corner
        _task("images/b.png", [_rect(["square"], -0.0001, 60, 50.0001, 40.0001)]),
    ]
    done = import_labels(_ls(queue, tasks), data, LABELS, detection=True)
    assert (done["imported"], done["rejected"]) == (2, [])
    assert _labels(data, "a") == "1 0.400000 0.600000 0.400000 0.400000\n"
    assert _labels(data, "b") == "1 0.250000 0.800000 0.500000 0.400000\n"
    far = [_task("images/c.png", [_rect(["square"], -5, 10, 50, 40)])]
    _image(queue / "images" / "c.png", 3)
    done = import_labels(_ls(queue, far), data, LABELS, detection=True)
    assert done["rejected"][0].endswith("a box lies outside the image")


def _choices(control: str, *names: str) -> dict:
    return {"type": "choices", "from_name": control, "value": {"choices": list(names)}}


def test_a_class_is_one_choice_of_the_class_control(queue, tmp_path) -> None:
    """Label Studio lets a <Choices> control take several values and a task carry other
    controls (an image-quality choice): the class is the queue's 'label' control, else the
    only control, with exactly one choice; anything else rejects the task (the first value
    or the last control was taken silently)."""
    _image(queue / "images" / "c.png", 9)
    tasks = [
        _task("a.png", [_choices("label", "square"), _choices("quality", "blurry")]),
        _task("b.png", [_choices("label", "circle", "square")]),
        _task("c.png", [_choices("class", "circle"), _choices("quality", "sharp")]),
    ]
    data = tmp_path / "data"
    done = import_labels(_ls(queue, tasks), data, LABELS, detection=False)
    assert done["imported"] == 1 and (data / "square" / "a.png").is_file()
    assert [line.split("export.json: ")[1] for line in done["rejected"]] == [
        "task 1: has 2 choices ('circle', 'square'); an image gets one class",
        "task 2: has choices of 2 controls ('class', 'quality') and none is named 'label' (the "
        "class's control in the queue's tasks)",
    ]


def test_two_cvat_tags_reject_a_class_but_not_boxes(queue, tmp_path) -> None:
    box = '<box label="square" xtl="10" ytl="10" xbr="30" ybr="30"/>'
    tags = '<tag label="circle"/><tag label="square"/>'
    xml = _cvat(queue, f'<image id="0" name="a.png" width="{W}" height="{H}">{tags}{box}</image>')
    done = import_labels(xml, tmp_path / "classes", LABELS, detection=False)
    assert done["imported"] == 0
    assert done["rejected"][0].endswith("has 2 tags ('circle', 'square'); an image gets one class")
    done = import_labels(xml, tmp_path / "boxes", LABELS, detection=True)  # tags are no boxes
    assert (done["imported"], done["rejected"]) == (1, [])
