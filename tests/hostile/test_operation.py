"""Hostile input to the operation side: prediction logs and their exports, labelling
exports. Each is refused in one line naming the file and the entry; nothing is written.
(Cases that need a real bundle are in tests/deploy/test_hostile.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tango_ci.exceptions import TangoError
from tango_ci.labelling.importing import import_labels
from tango_ci.monitor import read_window

GOOD = {
    "model_version": "v1",
    "role": "champion",
    "time": 1.0,
    "outputs": {"probabilities": [0.5, 0.25, 0.25]},
    "input_summary": {"shape": [8, 8, 3], "mean": [1, 2, 3], "std": [1, 1, 1]},
}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "record-file.jsonl:2: not a JSON record"),
        (
            json.dumps(GOOD | {"outputs": {"probabilities": [float("nan"), 1.0]}}),
            ":2: not a JSON record (NaN at outputs/probabilities/0 is not a number JSON allows)",
        ),
        (json.dumps(GOOD | {"outputs": "class 1"}), "record 2: 'outputs' is not an object"),
        (json.dumps(GOOD | {"model_version": 7}), "record 2: 'model_version' is not text"),
        (json.dumps(GOOD | {"input_summary": {"mean": "dark"}}), "record 2: 'input_summary'"),
        (json.dumps([1, 2]), "record 2: not an object"),
    ],
)
def test_a_malformed_log_export_is_refused_naming_the_record(tmp_path: Path, line, message):
    path = tmp_path / "record-file.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + line + "\n")
    with pytest.raises(TangoError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_window(path, None, 100)


def test_a_labelled_image_linked_from_outside_is_rejected(tmp_path: Path) -> None:
    queue, data = tmp_path / "queue", tmp_path / "data"
    (queue / "images").mkdir(parents=True)
    secret = tmp_path / "secret.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(secret)
    (queue / "images" / "x.png").symlink_to(secret)
    export = queue / "export.json"
    result = [{"type": "choices", "value": {"choices": ["circle"]}}]
    export.write_text(
        json.dumps([{"data": {"image": "images/x.png"}, "annotations": [{"result": result}]}])
    )
    (data / "circle").mkdir(parents=True)
    done = import_labels(export, data, ["circle"], detection=False)
    assert done["imported"] == 0 and "is not a file beside the export" in done["rejected"][0]
    assert list((data / "circle").iterdir()) == []


def test_a_cvat_file_with_an_entity_bomb_or_an_outside_entity_changes_nothing(tmp_path) -> None:
    data = tmp_path / "data"
    (data / "circle").mkdir(parents=True)
    bomb = tmp_path / "bomb.xml"
    bomb.write_text(
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxxxx">'
        '<!ENTITY y "&x;&x;&x;&x;&x;&x;&x;&x;&x;&x;"><!ENTITY z "&y;&y;&y;&y;&y;&y;&y;&y;&y;">'
        '<!ENTITY f SYSTEM "file:///etc/passwd">]>'
        '<annotations><image id="0" name="&f;" width="8" height="8">'
        '<tag label="&z;"/></image></annotations>'
    )
    try:
        done = import_labels(bomb, data, ["circle"], detection=False)
    except TangoError as error:  # refused as unreadable XML: also fine
        assert "bomb.xml" in str(error)
    else:
        assert done["imported"] == 0 and len(done["rejected"]) == 1
    assert list((data / "circle").iterdir()) == []


def test_new_data_for_the_gate_may_not_link_out_of_the_repository(tmp_path: Path) -> None:
    """gate.challenger's folders are read like the dataset: a class folder or an image linked
    out of the repository is refused, naming it, before anything is read from it."""
    from PIL import Image

    from tango_ci.data.challenger import read_labelled

    repo, outside = tmp_path / "repo", tmp_path / "secrets"
    (repo / "new" / "circle").mkdir(parents=True)
    outside.mkdir()
    Image.new("RGB", (8, 8)).save(outside / "x.png")
    Image.new("RGB", (8, 8)).save(repo / "new" / "circle" / "a.png")
    (repo / "new" / "square").symlink_to(outside)
    with pytest.raises(TangoError, match=r"new/square: a symbolic link out of the repository"):
        read_labelled(repo / "new", ["circle", "square"], 8, repo, {})
    (repo / "new" / "square").unlink()
    (repo / "new" / "circle" / "b.png").symlink_to(outside / "x.png")
    with pytest.raises(TangoError, match=r"b\.png: a symbolic link out of the repository"):
        read_labelled(repo / "new", ["circle", "square"], 8, repo, {})
