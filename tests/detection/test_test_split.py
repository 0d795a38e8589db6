"""The test split of YOLO data: data.yaml's test entry used as given, otherwise a seeded
fraction of the training images that the data.yaml written for training leaves out."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tango_ci import api
from tango_ci.data.yolo import read_dataset
from tango_ci.detection.data_stage import load_test, load_val
from tango_ci.rundir import RunDir, read_json
from tests.conftest import write_project

PROJECT = """\
name: det
task: detection
data:
  path: data
  format: yolo
  image_size: 32
{split}  synth: {{images_per_class: 4, size: 32, seed: 0}}
targets:
  - name: cpu
    runner: local-cpu
    engine: onnxruntime
"""


def _project(root: Path, split: str = "") -> Path:
    return write_project(root, "det", PROJECT.format(split=split)).parent


def _data_stage(project: Path) -> RunDir:
    return api.run(project, until="data")


def _training_images(run: RunDir) -> set[str]:
    dataset, problems = read_dataset(run.stage_dir("data") / "data.yaml")
    assert dataset is not None, problems
    return {str(p.relative_to(dataset.root)) for p in dataset.images["train"]}


def test_the_test_split_is_drawn_from_training_and_left_out_of_it(spec_repo: Path) -> None:
    run = _data_stage(_project(spec_repo))
    data = run.stage_dir("data")
    summary = read_json(data / "manifest.json")["summary"]
    assert summary["images"] == {"train": 8, "val": 2, "test": 2}  # 12: 2 val, 15% of 10
    files = read_json(data / "files.json")
    assert set(files) == {"train", "val", "test"}
    splits = {name: set(paths) for name, paths in files.items()}
    assert not splits["train"] & splits["test"] and not splits["val"] & splits["test"]
    assert all(p.startswith("images/train/") for p in splits["test"])
    written = yaml.safe_load((data / "data.yaml").read_text())
    assert written["train"] == str((data / "train.txt").resolve()) and "test" not in written
    assert _training_images(run) == splits["train"]  # what ultralytics trains on
    images, truths, names = load_test(run)
    assert len(images) == len(truths) == 2 and names == files["test"]
    assert len(load_val(run)[0]) == 2
    again = _data_stage(_project(spec_repo))
    assert read_json(again.stage_dir("data") / "files.json") == files  # seeded


def test_a_test_entry_of_data_yaml_is_used_as_given(spec_repo: Path) -> None:
    project = _project(spec_repo)
    api.synth_project_data(project / "project.yaml")
    root = project / "data"
    for kind in ("images", "labels"):
        (root / kind / "test").mkdir()
        for path in sorted((root / kind / "train").iterdir())[:3]:
            shutil.move(path, root / kind / "test" / path.name)
    content = yaml.safe_load((root / "data.yaml").read_text())
    (root / "data.yaml").write_text(yaml.safe_dump({**content, "test": "images/test"}))
    run = _data_stage(project)
    data = run.stage_dir("data")
    assert read_json(data / "manifest.json")["summary"]["images"] == {
        "train": 7,
        "val": 2,
        "test": 3,
    }
    files = read_json(data / "files.json")
    assert all(p.startswith("images/test/") for p in files["test"])
    assert _training_images(run) == set(files["train"]) and len(files["train"]) == 7
    assert len(load_test(run)[0]) == 3


def test_test_zero_gives_no_test_split(spec_repo: Path) -> None:
    run = _data_stage(_project(spec_repo, "  split: {test: 0}\n"))
    data = run.stage_dir("data")
    assert read_json(data / "manifest.json")["summary"]["images"] == {"train": 10, "val": 2}
    assert not (data / "test.npz").exists()
    assert len(_training_images(run)) == 10
