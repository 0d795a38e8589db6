"""The labelling loop's two ends: a queue of the logged images most worth labelling (Label
Studio tasks, CVAT XML) and the import of a labelled export into the data folder."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tango_ci.exceptions import TangoError
from tango_ci.labelling import choose, write_queue
from tango_ci.labelling.importing import import_labels
from tango_ci.monitor import read_window
from tango_ci.runtime import Bundle
from tango_ci.runtime.logs import PredictionLog
from tango_ci.runtime.server import Service

pytestmark = pytest.mark.slow


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 28, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def served(bundle: Path, tmp_path: Path) -> tuple[Path, Path, Bundle]:
    log, kept = tmp_path / "log.sqlite", tmp_path / "kept"
    loaded = Bundle(bundle)
    service = Service(loaded, log=PredictionLog(log), keep_images=kept)
    for seed in range(30):
        service.image(_png(seed))
    service.image(_png(0))  # the same image twice is one candidate
    service.log.close()
    return log, kept, loaded


def test_the_queue_holds_the_most_uncertain_images_with_pre_annotations(served, tmp_path) -> None:
    log, kept, loaded = served
    records = read_window(log, None, 1000)
    done = write_queue(records, kept, tmp_path / "queue", 5, "entropy", loaded.labels)
    assert done == {"strategy": "entropy", "budget": 5, "queued": 5, "pool": 30}
    tasks = json.loads((tmp_path / "queue" / "tasks.json").read_text())
    entropies = [
        -sum(p * np.log(max(p, 1e-12)) for p in r["outputs"]["probabilities"]) for r in records
    ]
    top = sorted(set(entropies), reverse=True)[:5]
    chosen = {t["data"]["input_hash"] for t in tasks}
    assert {r["input_hash"] for r, e in zip(records, entropies, strict=True) if e in top} == chosen
    result = tasks[0]["predictions"][0]["result"][0]
    assert result["type"] == "choices" and result["value"]["choices"][0] in loaded.labels
    assert (tmp_path / "queue" / tasks[0]["data"]["image"]).is_file()
    xml = (tmp_path / "queue" / "annotations.xml").read_text()
    assert xml.count("<image ") == 5 and "<tag label=" in xml
    with pytest.raises(TangoError, match="exists and is not empty"):
        write_queue(records, kept, tmp_path / "queue", 5, "random", loaded.labels)


def test_every_strategy_picks_distinct_images() -> None:
    rng = np.random.default_rng(0)
    records = []
    for i in range(40):
        p = rng.dirichlet(np.ones(3))
        records.append(
            {"outputs": {"probabilities": p.tolist()}, "input_summary": {"mean": [i], "std": [1]}}
        )
    for strategy in ("entropy", "margin", "least-confidence", "coreset", "random"):
        picked = choose(records, 10, strategy)
        assert len(set(picked)) == 10, strategy
    with pytest.raises(TangoError, match="strategy 'typicality' is not one of"):
        choose(records, 3, "typicality")


def _export(folder: Path, tasks: list) -> Path:
    path = folder / "export.json"
    path.write_text(json.dumps(tasks))
    return path


def test_an_import_adds_the_labelled_images_and_names_every_rejected_entry(tmp_path) -> None:
    queue, data = tmp_path / "queue", tmp_path / "data"
    (queue / "images").mkdir(parents=True)
    for name in ("a.png", "b.png", "c.png"):
        (queue / "images" / name).write_bytes(_png(len(name) + ord(name[0])))
    (data / "circle").mkdir(parents=True)

    def task(image: str, label: str) -> dict:
        result = [{"type": "choices", "value": {"choices": [label]}}]
        return {"data": {"image": image}, "annotations": [{"result": result}]}

    export = _export(
        queue,
        [
            task("images/a.png", "circle"),
            task("images/b.png", "hexagon"),  # not a class of the project
            task("../../etc/passwd", "circle"),  # outside the export's folder
            task("images/c.png", "square"),
            {"data": {"image": "images/c.png"}, "annotations": []},  # not labelled
        ],
    )
    done = import_labels(export, data, ["circle", "square"], detection=False)
    assert done["imported"] == 2
    assert (data / "circle" / "a.png").is_file() and (data / "square" / "c.png").is_file()
    assert [line.split(": ", 2)[1] for line in done["rejected"]] == ["task 1", "task 2", "task 4"]
    assert "label 'hexagon' is not one of circle, square" in done["rejected"][0]
    again = import_labels(export, data, ["circle", "square"], detection=False)
    assert again["imported"] == 0 and "already in the data" in again["rejected"][0]


def test_a_malformed_export_changes_nothing(tmp_path) -> None:
    data = tmp_path / "data"
    (data / "circle").mkdir(parents=True)
    before = sorted(p.name for p in data.rglob("*"))
    bad = tmp_path / "export.json"
    bad.write_text('[{"data": ')
    with pytest.raises(TangoError, match=r"export\.json: not a Label Studio JSON export"):
        import_labels(bad, data, ["circle"], detection=False)
    xml = tmp_path / "annotations.xml"
    xml.write_text("<annotations><image name='x.png'>")
    with pytest.raises(TangoError, match=r"annotations\.xml: not CVAT XML"):
        import_labels(xml, data, ["circle"], detection=True)
    assert sorted(p.name for p in data.rglob("*")) == before


def test_cvat_and_label_studio_boxes_become_yolo_labels(tmp_path) -> None:
    queue, data = tmp_path / "queue", tmp_path / "data"
    (queue / "images").mkdir(parents=True)
    (queue / "images" / "a.png").write_bytes(_png(1))  # 28 x 24
    (queue / "images" / "b.png").write_bytes(_png(2))
    xml = queue / "annotations.xml"
    xml.write_text(
        "<annotations><version>1.1</version>"
        '<image id="0" name="images/a.png" width="28" height="24">'
        '<box label="square" xtl="7" ytl="6" xbr="21" ybr="18"/></image>'
        '<image id="1" name="images/b.png" width="28" height="24">'
        '<box label="square" xtl="7" ytl="6" xbr="40" ybr="18"/></image></annotations>'
    )
    done = import_labels(xml, data, ["circle", "square"], detection=True)
    assert done["imported"] == 1 and "outside the image" in done["rejected"][0]
    assert (data / "labels" / "train" / "a.txt").read_text() == (
        "1 0.500000 0.500000 0.500000 0.500000\n"
    )
    assert (data / "images" / "train" / "a.png").is_file()


def test_a_share_of_each_class_is_kept_apart_for_the_gate(tmp_path) -> None:
    """gate.challenger's new data: a share of each class, chosen by content, never trained on."""
    queue, data, held = tmp_path / "queue", tmp_path / "data", tmp_path / "new-labels"
    (queue / "images").mkdir(parents=True)
    (data / "circle").mkdir(parents=True)
    tasks = []
    for index in range(8):
        name = f"images/{index}.png"
        (queue / name).write_bytes(_png(index + 1))
        label = "circle" if index % 2 else "square"
        tasks.append(
            {
                "data": {"image": name},
                "annotations": [{"result": [{"type": "choices", "value": {"choices": [label]}}]}],
            }
        )
    export = _export(queue, tasks)
    labels = ["circle", "square"]
    done = import_labels(export, data, labels, detection=False, held=held, fraction=0.5)
    assert (done["imported"], done["held_out"]) == (8, 4)
    for label in labels:
        assert len(list((held / label).glob("*.png"))) == 2
        assert len(list((data / label).glob("*.png"))) == 2
    again = import_labels(export, data, labels, detection=False, held=held, fraction=0.5)
    assert again["imported"] == 0
    assert sum("already in the new data" in line for line in again["rejected"]) == 4


def test_an_imported_postscript_image_never_reaches_the_eps_decoder(tmp_path, monkeypatch):
    """A labelled export is untrusted: a .png that is really EPS would make Pillow run
    Ghostscript; it is named as not an image, and nothing is added."""
    from PIL import EpsImagePlugin

    opened: list[str] = []

    def spy(self) -> None:
        opened.append(str(self.fp))
        raise SyntaxError("not allowed")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", spy)
    queue, data = tmp_path / "queue", tmp_path / "data"
    (queue / "images").mkdir(parents=True)
    (queue / "images" / "e.png").write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n")
    (data / "circle").mkdir(parents=True)
    result = [{"type": "choices", "value": {"choices": ["circle"]}}]
    export = _export(
        queue, [{"data": {"image": "images/e.png"}, "annotations": [{"result": result}]}]
    )
    done = import_labels(export, data, ["circle"], detection=False)
    assert opened == []
    assert done["imported"] == 0 and "'images/e.png' is not an image" in done["rejected"][0]
    assert list((data / "circle").iterdir()) == []
