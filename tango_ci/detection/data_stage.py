"""The data stage for YOLO datasets: check every label line, fingerprint, save the validation
and test splits (letterboxed) for the bench stage, and write a data.yaml with absolute paths for
ultralytics.

The test split is data.yaml's ``test:`` entry when it has one; otherwise a seeded fraction
(``data.split.test``) of the training images, which the data.yaml written for training then
leaves out (its ``train:`` is a list file of the rest). Search and training never see it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import yaml

from tango_ci.context import StageContext
from tango_ci.data.dataset import held_out
from tango_ci.data.yolo import YoloDataset, check_dataset, load_split
from tango_ci.exceptions import SpecError, TangoError
from tango_ci.rundir import write_json
from tango_ci.spec import find_repo_root

TRAIN_LIST = "train.txt"


class DatasetError(SpecError):
    """A dataset with problems; every problem is printed as file:line:col."""


def draw_test(dataset: YoloDataset, fraction: float, seed: int) -> YoloDataset:
    """``dataset`` with a seeded ``fraction`` of its training images moved to a test split
    (at least one when the fraction is above 0, never the last training image); as it is
    when data.yaml names a test split or the fraction is 0."""
    train = dataset.images["train"]
    count = held_out(len(train), fraction)
    if "test" in dataset.images or fraction == 0:
        return dataset
    if count == 0:
        raise TangoError(
            f"{dataset.data_yaml}: data.split.test {fraction} holds out no image of "
            f"{len(train)} training image(s), one must stay for training; add images, a test "
            "entry, or set data.split.test to 0"
        )
    test = set(np.random.default_rng(seed).permutation(len(train))[:count].tolist())
    images = {
        **dataset.images,
        "train": tuple(p for i, p in enumerate(train) if i not in test),
        "test": tuple(p for i, p in enumerate(train) if i in test),
    }
    return dataclasses.replace(dataset, images=images)


def _training_yaml(folder: Path, dataset: YoloDataset, drawn: bool) -> dict:
    """data.yaml for ultralytics: train and val only; a list file of the training images
    when the test split was drawn from them."""
    if drawn:
        (folder / TRAIN_LIST).write_text(
            "".join(f"{p}\n" for p in dataset.images["train"]), encoding="utf-8"
        )
        train = str(folder.resolve() / TRAIN_LIST)
    else:
        train = str(dataset.images["train"][0].parent.relative_to(dataset.root))
    return {
        "path": str(dataset.root),
        "train": train,
        "val": str(dataset.images["val"][0].parent.relative_to(dataset.root)),
        "names": {i: n for i, n in enumerate(dataset.names)},
    }


def _save(path: Path, split: dict) -> None:
    counts = np.asarray([len(b) for b in split["boxes"]])
    np.savez(
        path,
        images=split["images"],
        counts=counts,
        boxes=np.concatenate(split["boxes"]) if counts.sum() else np.zeros((0, 5), np.float32),
    )


def run(ctx: StageContext) -> None:
    from tango_ci.data.stage import ensure_data

    spec = ctx.spec
    root = ensure_data(ctx)
    given, stats, problems = check_dataset(root, find_repo_root(spec.folder))
    if problems or given is None:  # check_dataset gives no dataset without problems
        raise DatasetError(problems)
    for warning in stats.pop("warnings", []):
        ctx.reporter.log(f"warning: {warning}")
    dataset = draw_test(given, spec.data.split.test, spec.data.split.seed)
    drawn = dataset is not given
    folder = ctx.folder
    data_yaml = folder / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(_training_yaml(folder, dataset, drawn), sort_keys=False))
    files = {"train": [_relative(p, dataset.root) for p in dataset.images["train"]]}
    outputs = ["data.yaml", TRAIN_LIST] if drawn else ["data.yaml"]
    for split in ("val", "test"):
        if split not in dataset.images:
            continue
        loaded = load_split(dataset, split, spec.data.image_size)
        _save(folder / f"{split}.npz", loaded)
        files[split] = loaded["files"]
        outputs.append(f"{split}.npz")
        if drawn and split == "test":  # check_dataset counted them as training images
            boxes = sum(len(b) for b in loaded["boxes"])
            stats["images"] |= {"train": len(dataset.images["train"]), "test": len(files[split])}
            stats["boxes"] |= {"train": stats["boxes"]["train"] - boxes, "test": boxes}
    write_json(folder / "classes.json", list(dataset.names))
    write_json(folder / "files.json", files)
    write_json(folder / "stats.json", stats)
    for name in (*outputs, "classes.json", "files.json", "stats.json"):
        ctx.recorder.output_file(name.split(".")[0], folder / name)
    ctx.recorder.inputs["dataset"] = {"path": str(root), "fingerprint": stats["fingerprint"]}
    ctx.recorder.summary.update(
        {
            "classes": list(dataset.names),
            "images": stats["images"],
            "boxes": stats["boxes"],
            "fingerprint": stats["fingerprint"],
            "image_size": spec.data.image_size,
            "test_split": _test_source(given, spec.data.split.test, drawn),
        }
    )


def _test_source(given: YoloDataset, fraction: float, drawn: bool) -> str:
    """Where the test split came from, in words (the stage's summary)."""
    if "test" in given.images:
        return "data.yaml's test entry"
    if drawn:
        return f"{fraction * 100:g}% of the training images, drawn with data.split.seed"
    return "none (data.split.test is 0)"


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:  # a split folder beside the dataset's path
        return str(path)


def load_images(run, split: str) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    """Letterboxed images of ``split`` (``val`` or ``test``), per-image boxes (class, x1, y1,
    x2, y2) and file names."""
    from tango_ci.rundir import read_json

    folder = run.stage_dir("data")
    with np.load(folder / f"{split}.npz") as data:
        images, counts, boxes = data["images"], data["counts"], data["boxes"]
    parts = np.split(boxes, np.cumsum(counts)[:-1]) if len(counts) else []
    return images, list(parts), read_json(folder / "files.json")[split]


def load_val(run) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    """The validation split (what search and training are scored on)."""
    return load_images(run, "val")


def load_test(run) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    """The test split, which only the gate and the report see."""
    return load_images(run, "test")
