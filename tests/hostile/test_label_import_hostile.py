"""Hostile and careless labelling exports: image names that cannot be file names, zip
archives that reach out or blow up, files the data stage would not read, one image given two
classes (in one export, or again after it was imported), and exports whose every entry is
rejected. Each bad entry is one rejected line; a bad archive is refused in one line before
anything is written."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from tango_ci.exceptions import TangoError
from tango_ci.labelling.importing import import_labels
from tests.conftest import spec_repo, write_project  # noqa: F401  (fixture)
from tests.hostile.conftest import Tree, tango_here, write_export

LABELS = ["circle", "square"]


def _choice(image: str, label: str = "circle") -> dict:
    result = [{"type": "choices", "value": {"choices": [label]}}]
    return {"data": {"image": image}, "annotations": [{"result": result}]}


@pytest.fixture
def queue(tmp_path: Path) -> Path:
    folder = tmp_path / "queue"
    (folder / "images").mkdir(parents=True)
    for shade, name in enumerate(("a", "b", "c")):
        Image.new("RGB", (12, 12), (shade * 80, 0, 0)).save(folder / "images" / f"{name}.png")
    return folder


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    for label in LABELS:
        (folder / label).mkdir(parents=True)
    return folder


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("images/a\x00.png", "its image name has a NUL byte"),
        ("images/a\ud800.png", "its image name is not valid Unicode text"),
        ("images/" + "a" * 300 + ".png", "its image name is longer than a file name may be"),
    ],
)
def test_an_image_name_that_cannot_be_a_file_name_rejects_its_entry(queue, data, name, reason):
    """They raised out of the import (embedded null byte, UnicodeEncodeError, File name too
    long), importing nothing."""
    export = write_export(queue, [_choice(name), _choice("images/b.png")])
    done = import_labels(export, data, LABELS, detection=False)
    assert done["imported"] == 1 and done["rejected"] == [f"{export}: task 0: {reason}"]
    assert [p.name for p in (data / "circle").iterdir()] == ["b.png"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("b.gif", "is a .gif file, which the data stage does not read"),
        ("noext", "has no suffix, which the data stage does not read"),
        (".hidden.png", "has a hidden name ('.hidden.png'), which the data stage skips"),
    ],
)
def test_a_file_the_data_stage_would_not_read_is_rejected(queue, data, name, reason) -> None:
    Image.new("RGB", (12, 12)).save(queue / "images" / name, format="PNG")
    export = write_export(queue, [_choice(f"images/{name}"), _choice("images/a.png")])
    done = import_labels(export, data, LABELS, detection=False)
    assert (
        done["imported"] == 1 and f"task 0: image 'images/{name}' {reason}" in done["rejected"][0]
    )
    assert [p.name for p in (data / "circle").iterdir()] == ["a.png"]


def _zip(path: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


XML = b'<annotations><image id="0" name="a.png"><tag label="circle"/></image></annotations>'


@pytest.mark.parametrize(
    ("members", "links", "message"),
    [
        ({"annotations.xml": XML, "../a.png": b"x"}, (), "entry '../a.png' would be written outside"),
        ({"annotations.xml": XML, "/tmp/a.png": b"x"}, (), "entry '/tmp/a.png' would be written outside"),
        ({"annotations.xml": XML}, ("images/a.png",), "entry 'images/a.png' is a symbolic link"),
        ({"images/a.png": b"x"}, (), "holds no annotations.xml (CVAT for images 1.1) or one .json"),
    ],
)  # fmt: skip
def test_a_zip_that_reaches_out_or_holds_no_export_is_refused(
    tmp_path, data, members, links, message
):
    tree = Tree(tmp_path)
    archive = _zip(tmp_path / "task.zip", members, links)
    tree = Tree(tmp_path)
    with pytest.raises(TangoError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_labels(archive, data, LABELS, detection=False)
    tree.assert_unchanged()


def test_a_zip_over_its_bounds_is_refused(tmp_path, data, monkeypatch) -> None:
    from tango_ci.labelling import sources

    archive = _zip(tmp_path / "task.zip", {"annotations.xml": XML, "images/a.png": b"x" * 5000})
    monkeypatch.setattr(sources, "MAX_ZIP_BYTES", 4000)
    with pytest.raises(TangoError, match=r"task\.zip: unpacks to more than"):
        import_labels(archive, data, LABELS, detection=False)
    monkeypatch.setattr(sources, "MAX_ZIP_ENTRIES", 1)
    with pytest.raises(TangoError, match=r"task\.zip: more than 1 entries"):
        import_labels(archive, data, LABELS, detection=False)
    assert not any(any((data / label).iterdir()) for label in LABELS)


def test_an_image_already_imported_under_another_class_is_not_relabelled(queue, data) -> None:
    """It landed in both class folders, under the same name or another: trained as both."""
    import_labels(write_export(queue, [_choice("images/a.png", "circle")]), data, LABELS, False)
    (queue / "images" / "copy.png").write_bytes((queue / "images" / "a.png").read_bytes())
    export = write_export(
        queue, [_choice("images/a.png", "square"), _choice("images/copy.png", "square")]
    )
    done = import_labels(export, data, LABELS, detection=False)
    assert done["imported"] == 0
    for line in done["rejected"]:
        assert (
            "the image is already in the data as circle/a.png; an import does not relabel" in line
        )
        assert line.endswith(f"move {data / 'circle' / 'a.png'} into {data / 'square'}/")
    assert list((data / "square").iterdir()) == []


def test_one_image_given_two_classes_in_one_export_is_rejected_in_both(queue, data) -> None:
    tasks = [
        _choice("images/a.png", "circle"),
        _choice("images/b.png", "circle"),
        _choice("images/a.png", "square"),
    ]
    done = import_labels(write_export(queue, tasks), data, LABELS, detection=False)
    assert done["imported"] == 1
    assert [line.split(": ", 2)[2] for line in done["rejected"]] == [
        "the same image is labelled circle and square in this export (also task 2); "
        "neither is imported",
        "the same image is labelled circle and square in this export (also task 0); "
        "neither is imported",
    ]
    assert [p.name for p in (data / "circle").iterdir()] == ["b.png"]
    assert list((data / "square").iterdir()) == []


def test_an_image_in_the_new_data_is_not_imported_again_for_training(queue, data, tmp_path):
    """With gate.challenger, an image held out under one class and labelled again under
    another landed in both the new data and the training data."""
    held = tmp_path / "new-labels"
    export = write_export(queue, [_choice("images/a.png", "circle")])
    first = import_labels(export, data, LABELS, detection=False, held=held, fraction=1.0)
    assert first["held_out"] == 1 and (held / "circle" / "a.png").is_file()
    again = write_export(queue, [_choice("images/a.png", "square")], "export2.json")
    done = import_labels(again, data, LABELS, detection=False, held=held, fraction=0.0)
    assert done["imported"] == 0
    assert f"already in the new data ({held}) as circle/a.png" in done["rejected"][0]
    assert list((data / "square").iterdir()) == [] and not (held / "square").exists()


def _project(root: Path) -> Path:
    write_project(root, "demo")
    for name in LABELS:
        folder = root / "projects" / "demo" / "data" / name
        folder.mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(folder / "0.png")
    return root / "projects" / "demo"


def test_an_import_that_imports_nothing_exits_1_and_caps_its_lines(spec_repo: Path) -> None:
    """491,520 rejected lines were printed for a 60 MB export, and the exit code said it
    worked."""
    _project(spec_repo)
    write_export(spec_repo, [{"data": {"image": "x.png"}, "annotations": []}] * 250)
    done = tango_here("label", "import", "export.json", "--project", "projects/demo", cwd=spec_repo)
    lines = done.stderr.splitlines()
    assert done.code == 1, done.stderr
    assert sum(line.startswith("rejected: ") for line in lines) == 200
    assert "... and 50 more rejected" in lines
    assert "0 imported into projects/demo/data, 250 rejected" in lines
    assert lines[-1].endswith("nothing was imported: all 250 entries were rejected")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("detection", [False, True])
def test_json_min_records_of_odd_shapes_are_rejected_one_line_each(queue, tmp_path, detection):
    """Label Studio's JSON-MIN export is outside content: values of any type under any key,
    ids that are not numbers, regions without numbers; each record is rejected with its
    reason (or read), never a traceback, and the sound record still comes in."""
    import json

    records = [
        {"image": "images/a.png", "id": 1, "annotation_id": 5, "label": "circle",
         "box": [{"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["circle"]}]},
        {"image": "images/b.png", "id": True, "annotation_id": 6, "label": [1, None, "x" * 5000]},
        {"image": "images/c.png", "id": [], "annotation_id": 7,
         "box": [{"x": "nan", "y": None, "width": {}, "height": -1, "rectanglelabels": ["circle"]}],
         "choice": {"choices": "circle"}},
        {"image": "images/c.png", "annotation_id": 8, "created_at": {"not": "a date"}},
        {"image": 7}, [], "text", None,
    ]  # fmt: skip
    path = queue / "min.json"
    path.write_text(json.dumps(records))
    done = import_labels(path, tmp_path / "out", LABELS, detection=detection)
    # classes: record 0 only; boxes: b and c too, as images without objects (b's choices are
    # no boxes; c's newest record, the last of a tie, has none), as the full export reads them
    assert (done["imported"], len(done["rejected"])) == ((3, 4) if detection else (1, 6))
    assert all("\n" not in line and "Traceback" not in line for line in done["rejected"])
