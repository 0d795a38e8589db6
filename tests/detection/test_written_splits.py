"""The data.yaml the data stage writes for ultralytics: read by ultralytics' own loader, it names
exactly the images (and label files) the stage checked for each split, whatever the layout
(list files, nested folders, a split beside the dataset's ``path:``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tango_ci import api
from tango_ci.data.yolo import label_path
from tango_ci.rundir import RunDir, read_json
from tests.conftest import write_project

PROJECT = """\
name: det
task: detection
data:
  path: data
  format: yolo
  image_size: 32
{split}targets:
  - name: cpu
    runner: local-cpu
    engine: onnxruntime
"""
NAMES = "names: [a, b, c]\n"


def _image(path: Path, seed: int, labels: str = "0 0.5 0.5 0.2 0.2\n") -> None:
    """A 32 px image of its own noise (no two alike) and its label file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    label_path(path).parent.mkdir(parents=True, exist_ok=True)
    label_path(path).write_text(labels)


def _pool_lists(data: Path) -> None:
    """train.txt and val.txt naming images of one folder."""
    for index in range(6):
        _image(data / f"images/pool/train{index}.png", index)
    (data / "train.txt").write_text("".join(f"images/pool/train{i}.png\n" for i in range(4)))
    (data / "val.txt").write_text("images/pool/train4.png\nimages/pool/train5.png\n")
    (data / "data.yaml").write_text(f"path: .\ntrain: train.txt\nval: val.txt\n{NAMES}")


def _mixed_val_list(data: Path) -> None:
    """A val.txt whose images sit in two folders, the first one's holding only one of them."""
    for index in range(6):
        _image(data / f"images/train/train{index}.png", index)
    _image(data / "images/val/val0.png", 10)
    (data / "train.txt").write_text("".join(f"images/train/train{i}.png\n" for i in range(5)))
    (data / "val.txt").write_text("images/val/val0.png\nimages/train/train5.png\n")
    (data / "data.yaml").write_text(f"path: .\ntrain: train.txt\nval: val.txt\n{NAMES}")


def _nested(data: Path) -> None:
    """images/{train,val}/{s1,s2}/..."""
    for offset, sub in enumerate(("s1", "s2")):
        for index in range(4):
            _image(data / f"images/train/{sub}/t{index}.png", 10 * offset + index)
        for index in range(2):
            _image(data / f"images/val/{sub}/v{index}.png", 100 + 10 * offset + index)
    (data / "data.yaml").write_text(f"path: .\ntrain: images/train\nval: images/val\n{NAMES}")


def _beside_path(data: Path) -> None:
    """val and test folders inside the repository but outside data.yaml's ``path:``."""
    for index in range(6):
        _image(data / f"images/train/t{index}.png", index)
    for index in range(2):
        _image(data.parent / f"extra/images/val/v{index}.png", 20 + index)
        _image(data.parent / f"extra/images/test/x{index}.png", 30 + index)
    (data / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: ../extra/images/val\n"
        f"test: ../extra/images/test\n{NAMES}"
    )


LAYOUTS = {
    "list-files-of-one-folder": (_pool_lists, "  split: {test: 0}\n"),
    "val-list-over-two-folders": (_mixed_val_list, ""),
    "nested-split-folders": (_nested, ""),
    "splits-beside-the-dataset-path": (_beside_path, ""),
}


def _data_stage(repo: Path, layout: str) -> RunDir:
    make, split = LAYOUTS[layout]
    project = write_project(repo, "det", PROJECT.format(split=split)).parent
    make(project / "data")
    return api.run(project, until="data")


def _as_ultralytics_loads(data_yaml: Path, split: str) -> tuple[set[Path], set[Path], int]:
    """The images and label files ultralytics' YOLODataset reads for ``split`` of
    ``data_yaml``, and the boxes it keeps; offline."""
    from tango_ci.detection.ultralytics_env import import_configured

    check_det_dataset = import_configured("ultralytics.data.utils").check_det_dataset
    loader = import_configured("ultralytics.data.dataset").YOLODataset
    data = check_det_dataset(str(data_yaml), autodownload=False)
    dataset = loader(img_path=data[split], data=data, imgsz=32, augment=False, cache=False)
    boxes = sum(len(label["cls"]) for label in dataset.labels)
    return set(map(Path, dataset.im_files)), set(map(Path, dataset.label_files)), boxes


@pytest.mark.parametrize("layout", LAYOUTS)
def test_ultralytics_reads_exactly_the_checked_splits(spec_repo: Path, layout: str) -> None:
    run = _data_stage(spec_repo, layout)
    folder = run.stage_dir("data")
    files = read_json(folder / "files.json")
    root = spec_repo / "projects/det/data"
    for split in ("train", "val"):
        checked = {(root / name).resolve() for name in files[split]}
        images, labels, boxes = _as_ultralytics_loads(folder / "data.yaml", split)
        assert {p.resolve() for p in images} == checked, split
        assert {p.resolve() for p in labels} == {label_path(p) for p in checked}, split
        assert boxes == len(checked)  # one box an image
    with np.load(folder / "val.npz") as val:
        assert val["counts"].tolist() == [1] * len(files["val"])


def test_splits_beside_the_dataset_path_are_named_relative_to_it(spec_repo: Path) -> None:
    """Not a traceback: validate and tango data check accept a split folder beside ``path:``."""
    run = _data_stage(spec_repo, "splits-beside-the-dataset-path")
    files = read_json(run.stage_dir("data") / "files.json")
    assert files["val"] == ["../extra/images/val/v0.png", "../extra/images/val/v1.png"]
    assert files["test"] == ["../extra/images/test/x0.png", "../extra/images/test/x1.png"]
    summary = read_json(run.stage_dir("data") / "manifest.json")["summary"]
    assert summary["images"] == {"train": 6, "val": 2, "test": 2}


def test_duplicate_boxes_are_removed_as_ultralytics_removes_them(spec_repo: Path) -> None:
    project = write_project(spec_repo, "det", PROJECT.format(split="")).parent
    data = project / "data"
    box, other = "0 0.5 0.5 0.2 0.2\n", "2 0.3 0.3 0.1 0.1\n"
    for index in range(6):
        _image(data / f"images/train/t{index}.png", index, box * 2)
    for index in range(2):
        _image(data / f"images/val/v{index}.png", 20 + index, box + other + box)
    (data / "data.yaml").write_text(f"path: .\ntrain: images/train\nval: images/val\n{NAMES}")
    run = api.run(project, until="data")
    folder = run.stage_dir("data")
    with np.load(folder / "val.npz") as val:
        assert val["counts"].tolist() == [2, 2]
        assert val["boxes"][:2, 0].tolist() == [0, 2]  # in the file's order
    _, _, boxes = _as_ultralytics_loads(folder / "data.yaml", "val")
    stats = read_json(folder / "stats.json")
    assert stats["boxes"]["val"] == boxes == 4
    assert stats["duplicate_boxes"] == 8  # 6 in train (test drawn from it), 2 in val
    assert stats["per_class"] == {"a": 8, "b": 0, "c": 2}
