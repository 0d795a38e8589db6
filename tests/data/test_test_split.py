"""The test split of ImageFolder data: drawn per class and seeded, disjoint from training and
validation, a test/ folder used as given, none with data.split.test 0, and every class keeps a
training image however small it is."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tango_ci.data.dataset import build_arrays, held_out
from tango_ci.data.layout import imagefolder_problem
from tango_ci.data.synth import SynthRequest, synthesize
from tango_ci.exceptions import TangoError
from tango_ci.rundir import read_json
from tests.conftest import MINIMAL_PROJECT, write_project


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    synthesize(SynthRequest(out=tmp_path / "d", images_per_class=10, size=16, seed=3))
    return tmp_path / "d"


def _build(folder: Path, **kwargs) -> dict:
    options = {"image_size": 16, "val_fraction": 0.2, "seed": 0, "max_bad_fraction": 0.05}
    return build_arrays(folder, **{**options, **kwargs})


def _paths(files: list[dict]) -> dict[str, set[str]]:
    splits: dict[str, set[str]] = {}
    for entry in files:
        splits.setdefault(entry["split"], set()).add(entry["path"])
    return splits


def _disjoint(splits: dict[str, set[str]]) -> bool:
    names = list(splits)
    return all(not splits[a] & splits[b] for i, a in enumerate(names) for b in names[i + 1 :])


def _counts(built: dict, split: str) -> list[int]:
    return np.bincount(built["arrays"][split][1], minlength=3).tolist()


def _to_split_folders(folder: Path, *, test: bool) -> None:
    """Move the images into train/ and val/ (and test/) class folders: 6, 2 and 2 a class
    (8 and 2 without test/)."""
    for cls in ("circle", "square", "triangle"):
        images = sorted((folder / cls).glob("*.png"))
        parts = {"train": images[:6], "val": images[6:8], "test": images[8:]}
        if not test:
            parts["train"] += parts.pop("test")
        for split, files in parts.items():
            (folder / split / cls).mkdir(parents=True, exist_ok=True)
            for image in files:
                shutil.move(image, folder / split / cls / image.name)
        (folder / cls).rmdir()


def test_one_folder_draws_the_test_split_from_what_is_not_validation(folder: Path) -> None:
    built, without = _build(folder, test_fraction=0.15), _build(folder)
    # 10 a class, each image placed by its content: about 2 validation, then about 15% of the
    # other 8 for the test split; at least one of each class in each split
    for split in ("val", "test", "train"):
        assert min(_counts(built, split)) >= 1
    per_class = np.sum([_counts(built, split) for split in built["arrays"]], axis=0)
    assert per_class.tolist() == [10, 10, 10]
    splits = _paths(built["files"])
    assert _disjoint(splits) and sum(map(len, splits.values())) == 30
    # the validation split is the one a run without a test split has
    assert _paths(without["files"])["val"] == splits["val"] and "test" not in without["arrays"]
    again, other = _build(folder, test_fraction=0.15), _build(folder, test_fraction=0.15, seed=1)
    assert _paths(again["files"]) == splits and _paths(other["files"])["test"] != splits["test"]


def test_split_folders_draw_the_test_split_from_train(folder: Path) -> None:
    _to_split_folders(folder, test=False)
    built = _build(folder, test_fraction=0.25)
    assert _counts(built, "val") == [2, 2, 2]  # val/ as it is
    test, train = _counts(built, "test"), _counts(built, "train")  # about 25% of 8, by content
    assert min(test) >= 1 and min(train) >= 1 and np.add(test, train).tolist() == [8] * 3
    splits = _paths(built["files"])
    assert _disjoint(splits)
    assert all(p.startswith("train/") for p in splits["test"] | splits["train"])


def test_a_test_folder_is_used_as_given(folder: Path) -> None:
    _to_split_folders(folder, test=True)
    assert imagefolder_problem(folder) is None
    for fraction in (0.0, 0.4):  # the fraction does not apply to a given test/ folder
        splits = _paths(_build(folder, test_fraction=fraction)["files"])
        assert {len(s) for s in splits.values()} == {18, 6}
        assert all(p.startswith("test/") for p in splits["test"])
        assert all(p.startswith("train/") for p in splits["train"])


def test_a_test_folder_with_a_class_train_lacks_is_refused(folder: Path) -> None:
    _to_split_folders(folder, test=True)
    (folder / "test" / "circle").rename(folder / "test" / "ellipse")
    assert imagefolder_problem(folder) == "test/ has the classes ellipse that train/ lacks"


def test_tiny_classes_keep_a_training_image(folder: Path) -> None:
    for cls, keep in (("circle", 1), ("square", 2), ("triangle", 3)):
        for image in sorted((folder / cls).glob("*.png"))[keep:]:
            image.unlink()
    built = _build(folder, test_fraction=0.15)
    assert _counts(built, "train") == [1, 1, 1]
    assert _counts(built, "val") == [0, 1, 1]
    assert _counts(built, "test") == [0, 0, 1]
    assert [held_out(n, 0.5) for n in (0, 1, 2, 3, 10)] == [0, 0, 1, 2, 5]
    assert [held_out(n, 0.0) for n in (1, 10)] == [0, 0]


def test_classes_too_small_for_a_test_split_are_an_error(folder: Path) -> None:
    for cls in ("circle", "square", "triangle"):
        for image in sorted((folder / cls).glob("*.png"))[2:]:
            image.unlink()
    with pytest.raises(TangoError, match=r"data.split.test 0.15 holds out no image"):
        _build(folder, test_fraction=0.15)
    assert "test" not in _build(folder, test_fraction=0.0)["arrays"]


def _data_stage(root: Path, split: str) -> Path:
    from tango_ci import api

    text = MINIMAL_PROJECT.replace("  format: imagefolder\n", f"  format: imagefolder\n{split}")
    project = write_project(root, "demo", text).parent
    return api.run(project, until="data").root / "data"


def test_the_data_stage_saves_and_counts_the_test_split(spec_repo: Path) -> None:
    data = _data_stage(spec_repo, "")  # data.split.test defaults to 0.15
    summary = read_json(data / "manifest.json")["summary"]
    # 10 a class, placed by content: about 2 validate, and 15% of the other 8 are tested
    assert sum(summary["images"].values()) == 30 and min(summary["images"].values()) >= 3
    assert summary["test_split"].startswith("about 15% of each class's training images")
    splits = _paths(read_json(data / "files.json"))
    assert _disjoint(splits) and {k: len(v) for k, v in splits.items()} == summary["images"]
    with np.load(data / "test.npz") as test:
        assert sorted(set(test["labels"].tolist())) == [0, 1, 2]
    assert "test" in read_json(data / "manifest.json")["outputs"]


def test_test_zero_gives_no_test_split(spec_repo: Path) -> None:
    data = _data_stage(spec_repo, "  split: {test: 0}\n")
    summary = read_json(data / "manifest.json")["summary"]
    assert set(summary["images"]) == {"train", "val"} and sum(summary["images"].values()) == 30
    assert summary["test_split"] == "none (data.split.test is 0)"
    assert not (data / "test.npz").exists()
    assert {e["split"] for e in read_json(data / "files.json")} == {"train", "val"}
