"""Hostile input to the labelling loop: log records the queue cannot use (a hash that walks
out of the kept-images folder, answers of the wrong shape), Label Studio exports of the wrong
shape, imports that would overwrite labels already in the data, and outside text printed by
the operation commands. Each is refused in one line or rejected with its reason; nothing is
written outside where the command may write, and nothing already there is lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tango_ci.exceptions import TangoError
from tango_ci.labelling import choose, kept_image, write_queue
from tango_ci.labelling.importing import import_labels
from tango_ci.runtime.logs import PredictionLog
from tests.conftest import spec_repo, write_project  # noqa: F401  (fixture)
from tests.hostile.conftest import Tree, tango, write_export
from tests.hostile.test_operation import GOOD

HASH, OTHER = "ab" * 32, "cd" * 32
RECORD = GOOD | {"input_hash": HASH, "outputs": {"probabilities": [0.5, 0.5]}}


@pytest.fixture
def kept(tmp_path: Path) -> Path:
    folder = tmp_path / "kept"
    folder.mkdir()
    for name in (HASH, OTHER):
        Image.new("RGB", (8, 8)).save(folder / f"{name}.img", format="PNG")
    return folder


def test_a_hash_that_walks_out_of_the_kept_images_is_refused(kept: Path, tmp_path) -> None:
    outside = tmp_path / "zzzz"
    outside.mkdir()
    Image.new("RGB", (8, 8), (200, 0, 0)).save(outside / "ab.img", format="PNG")
    tree = Tree(tmp_path)
    walking = RECORD | {"input_hash": "../zzzz/ab"}
    with pytest.raises(TangoError, match="record 1 of the window: 'input_hash' is not a sha256"):
        write_queue([walking], kept, tmp_path / "out", 5, "entropy", ["a", "b"])
    with pytest.raises(TangoError, match=r"'\.\./zzzz/ab' is not a sha256 in hex"):
        kept_image(kept, walking)
    tree.assert_unchanged()


def test_a_kept_image_linked_out_of_the_folder_is_refused(kept: Path, tmp_path) -> None:
    other = "ef" * 32
    Image.new("RGB", (8, 8)).save(tmp_path / "secret.png")
    (kept / f"{other}.img").symlink_to(tmp_path / "secret.png")
    records = [RECORD, RECORD | {"input_hash": other}]
    with pytest.raises(TangoError, match=rf"{other}\.img: leads out of"):
        write_queue(records, kept, tmp_path / "out", 5, "entropy", ["a", "b"])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"probabilities": []}, "'outputs.probabilities' is empty"),
        ({"probabilities": [0.2, 0.3, 0.5]}, "coreset compares answers and input statistics"),
        ({"label": 5, "probabilities": [0.5, 0.5]}, "'outputs.label' is not text"),
        ({"boxes": [{"class": 0, "score": 0.5, "label": "a"}]}, "box 1 has no 'box' of 4"),
        (
            {"boxes": [{"class": 0, "score": 0.5, "label": "a", "box": ["1", "2", "3", "4"]}]},
            "box 1 has no 'box' of 4 finite numbers",
        ),
        (
            {"boxes": [{"class": 0, "score": 0.5, "label": "a", "box": [1, 2, 3, 10**400]}]},
            "box 1 has no 'box' of 4 finite numbers",
        ),
        (
            {"boxes": [{"class": 0, "score": 0.5, "label": 3, "box": [1, 2, 3, 4]}]},
            "box 1: 'label' is not text",
        ),
    ],
)
def test_a_record_the_queue_cannot_use_is_refused_naming_it(kept, tmp_path, outputs, message):
    records = [RECORD, RECORD | {"input_hash": OTHER, "outputs": outputs}]
    with pytest.raises(TangoError, match=message):
        write_queue(records, kept, tmp_path / "out", 5, "coreset", ["a", "b"])
    assert not (tmp_path / "out").exists()
    without = {k: v for k, v in RECORD.items() if k != "input_hash"}
    with pytest.raises(TangoError, match="record 1 of the window: 'input_hash' is not a sha256"):
        write_queue([without], kept, tmp_path / "out", 5, "entropy", ["a", "b"])


def test_a_window_spanning_a_retraining_to_more_classes_is_ranked(kept, tmp_path) -> None:
    """After a retraining that added a class, the window holds answers of 2 and of 3
    classes: entropy ranks each on its own, as before the checks."""
    records = [
        RECORD,
        RECORD | {"input_hash": OTHER, "outputs": {"probabilities": [0.2, 0.3, 0.5]}},
    ]
    done = write_queue(records, kept, tmp_path / "out", 5, "entropy", ["a", "b", "c"])
    assert done["pool"] == 2


def test_queued_images_are_named_by_their_whole_hash(tmp_path: Path) -> None:
    """Two kept images whose hashes share their first 16 hex digits (a prefix can be made to
    collide) are two queued files, never one overwriting the other."""
    folder = tmp_path / "kept"
    folder.mkdir()
    twins = ["ab" * 8 + "0" * 48, "ab" * 8 + "1" * 48]
    for shade, name in enumerate(twins):
        Image.new("RGB", (8, 8), (shade * 200,) * 3).save(folder / f"{name}.img", format="PNG")
    records = [RECORD | {"input_hash": name} for name in twins]
    done = write_queue(records, folder, tmp_path / "out", 5, "entropy", ["a", "b"])
    queued = sorted(p.name for p in (tmp_path / "out" / "images").iterdir())
    assert done["queued"] == 2 and queued == [f"{name}.png" for name in twins]


def test_coreset_refuses_input_statistics_of_different_lengths() -> None:
    short = RECORD | {"input_summary": {"shape": [8, 8, 1], "mean": [1], "std": [1]}}
    with pytest.raises(TangoError, match="coreset compares answers and input statistics of one"):
        choose([RECORD, short], 2, "coreset")


def test_label_queue_refuses_an_empty_window(tmp_path: Path) -> None:
    done = tango(
        "label",
        "queue",
        "log.sqlite",
        "--bundle",
        "b",
        "--images",
        "k",
        "--out",
        "o",
        "--window",
        "0",
        cwd=tmp_path,
    )
    assert done.code == 2 and "--window" in done.stderr and not (tmp_path / "o").exists()


@pytest.fixture
def queue(tmp_path: Path) -> Path:
    folder = tmp_path / "queue"
    (folder / "images").mkdir(parents=True)
    Image.new("RGB", (20, 20), (9, 9, 9)).save(folder / "images" / "x.png")
    return folder


def _task(result: object, data: object = None) -> dict:
    data = {"image": "images/x.png"} if data is None else data
    return {"data": data, "annotations": [{"result": result}]}


@pytest.mark.parametrize(
    ("task", "reason"),
    [
        (_task([5]), "a result is not an object"),
        (_task({"a": 1}), "the annotation's 'result' is not a list"),
        (_task(7), "the annotation's 'result' is not a list"),
        (
            _task([{"type": "choices", "value": "circle"}]),
            "a 'choices' result has no 'value' object",
        ),
        (
            _task([{"type": "choices", "value": {"choices": {"a": 1}}}]),
            "a result's 'choices' is not a list of label names",
        ),
        (
            _task([{"type": "choices", "value": {"choices": [["circle"]]}}]),
            "a result's 'choices' is not a list of label names",
        ),
        (_task([], data=["images/x.png"]), "no image or no annotation"),
        ({"data": {"image": "images/x.png"}, "annotations": {"a": 1}}, "no image or no annotation"),
        (
            _task(
                [{"type": "rectanglelabels", "value": {"rectanglelabels": {"circle": 1}, "x": 1}}]
            ),
            "a result's 'rectanglelabels' is not a list of label names",
        ),
    ],
)
def test_a_label_studio_task_of_the_wrong_shape_is_rejected_with_its_reason(
    queue: Path, tmp_path: Path, task, reason
) -> None:
    data = tmp_path / "data"
    (data / "circle").mkdir(parents=True)
    for detection in (False, True):
        done = import_labels(write_export(queue, [task]), data, ["circle"], detection=detection)
        assert done["imported"] == 0 and done["rejected"] == [f"{_shown(queue)}: task 0: {reason}"]
    assert list((data / "circle").iterdir()) == [] and not (data / "images").exists()


def _shown(queue: Path) -> str:
    from tango_ci.rundir import display

    return display(queue / "export.json")


def test_a_deeply_nested_export_is_refused_in_one_line(queue: Path, tmp_path: Path) -> None:
    (queue / "export.json").write_text("[" * 100_000)
    with pytest.raises(TangoError, match=r"not a Label Studio JSON export \(nested too deeply\)"):
        import_labels(queue / "export.json", tmp_path / "data", ["circle"], detection=False)


def _cvat(queue: Path, images: list[tuple[str, str]]) -> Path:
    boxes = "".join(
        f'<image id="{i}" name="{name}"><box label="{label}" xtl="0" ytl="0" xbr="10" ybr="10"/>'
        "</image>"
        for i, (name, label) in enumerate(images)
    )
    path = queue / "annotations.xml"
    path.write_text(f"<annotations>{boxes}</annotations>")
    return path


def test_a_detection_import_never_takes_the_labels_of_an_image_already_there(
    queue: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "images" / "train").mkdir(parents=True)
    (data / "labels" / "train").mkdir(parents=True)
    Image.new("RGB", (20, 20)).save(data / "images" / "train" / "x.jpg")
    (data / "labels" / "train" / "x.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    tree = Tree(data)
    done = import_labels(_cvat(queue, [("images/x.png", "dog")]), data, ["cat", "dog"], True)
    assert done["imported"] == 0 and "named 'x' are already in the data" in done["rejected"][0]
    tree.assert_unchanged()
    for folder, shade in (("a", 1), ("b", 2)):
        (queue / "images" / folder).mkdir()
        Image.new("RGB", (20, 20), (shade,) * 3).save(queue / "images" / folder / "y.png")
    two = [("images/a/y.png", "cat"), ("images/b/y.png", "dog")]
    done = import_labels(_cvat(queue, two), data, ["cat", "dog"], True)
    assert done["imported"] == 1 and "image 1 (images/b/y.png)" in done["rejected"][0]
    assert (data / "labels" / "train" / "y.txt").read_text().startswith("0 ")


def test_one_image_name_twice_in_a_class_is_rejected_as_twice(queue: Path, tmp_path) -> None:
    data = tmp_path / "data"
    (data / "circle").mkdir(parents=True)
    for folder in ("a", "b"):
        (queue / "images" / folder).mkdir()
        Image.new("RGB", (8, 8)).save(queue / "images" / folder / "y.png")
    result = [{"type": "choices", "value": {"choices": ["circle"]}}]
    tasks = [_task(result, {"image": f"images/{f}/y.png"}) for f in ("a", "b")]
    done = import_labels(write_export(queue, tasks), data, ["circle"], detection=False)
    assert done["imported"] == 1 and done["rejected"][0].endswith(
        "circle/y.png comes twice in this import"
    )


OUTSIDE_TEXT = "[/]\n::error file=x::forged\x1b[2J[link=x]click[/link]"


def _printed_as_text(stderr: str) -> None:
    assert "[/]" in stderr and "[link=x]click[/link]" in stderr
    assert "\x1b" not in stderr and "\\x1b[2J" in stderr and "\\n::error" in stderr
    assert not any(line.startswith("::") for line in stderr.splitlines())


def test_logs_export_prints_versions_as_text_never_markup_or_commands(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "log.sqlite")
    log.append(RECORD | {"model_version": OUTSIDE_TEXT, "request": "r", "latency_ms": 1.0})
    log.close()
    done = tango("logs", "export", "log.sqlite", "--out", "out.jsonl", cwd=tmp_path)
    assert done.code == 0, done.stderr
    _printed_as_text(done.stderr)
    assert (tmp_path / "out.jsonl").read_text().count("\n") == 1


def test_label_import_prints_rejected_names_as_text(spec_repo: Path) -> None:
    write_project(spec_repo, "demo")
    for name in ("circle", "square"):
        folder = spec_repo / "projects" / "demo" / "data" / name
        folder.mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(folder / "0.png")
    result = [{"type": "choices", "value": {"choices": ["circle"]}}]
    write_export(spec_repo, [_task(result, {"image": OUTSIDE_TEXT})])
    done = tango("label", "import", "export.json", "--project", "projects/demo", cwd=spec_repo)
    assert done.code == 1, done.stderr  # nothing imported
    _printed_as_text(done.stderr)
    assert "0 imported" in done.stderr and "1 rejected" in done.stderr


def test_an_import_never_overwrites_a_file_written_while_it_ran(tmp_path: Path) -> None:
    """The files are placed by hard link or exclusive create: a target that exists by then
    stops the import, keeps its bytes, and the files already placed are taken back."""
    from tango_ci.labelling.importing import place_all

    staged, data = tmp_path / "staged", tmp_path / "data"
    (staged / "a").mkdir(parents=True)
    (data / "a").mkdir(parents=True)
    for name in ("1.png", "2.png"):
        (staged / "a" / name).write_bytes(b"new " + name.encode())
    (data / "a" / "2.png").write_bytes(b"written meanwhile")
    plan = [(staged / "a" / n, data / "a" / n) for n in ("1.png", "2.png")]
    with pytest.raises(TangoError, match=r"2\.png appeared during the import; nothing was"):
        place_all(plan)
    assert (data / "a" / "2.png").read_bytes() == b"written meanwhile"
    assert not (data / "a" / "1.png").exists()
