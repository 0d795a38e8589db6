"""Hostile input to the operation side: bundles, prediction logs and exports, labelling
exports. Each is refused in one line naming the file and the entry; nothing is run or
written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tango_ci.exceptions import TangoError
from tango_ci.labelling.importing import import_labels
from tango_ci.monitor import monitor, read_window
from tango_ci.runtime import Bundle, BundleError

pytestmark = pytest.mark.slow

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
            "record 2: 'outputs.probabilities' is not a list of finite numbers",
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


def test_a_window_of_the_wrong_width_is_refused(bundle: Path, tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    record = GOOD | {
        "model_version": Bundle(bundle).version,
        "outputs": {"probabilities": [1.0] * 9},
    }
    path.write_text("\n".join(json.dumps(record) for _ in range(30)) + "\n")
    with pytest.raises(TangoError, match="record 1 of the window: not 3 class probabilities"):
        monitor(path, bundle, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_manifest_whose_model_is_not_listed_is_refused(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    (tmp_path / "evil.onnx").write_bytes(b"not checked")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["model"] = "../evil.onnx"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="'model' must name one of the listed files"):
        Bundle(copy)


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
