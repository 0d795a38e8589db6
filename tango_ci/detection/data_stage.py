"""The data stage for YOLO datasets: check every label line, fingerprint, save the validation
and test splits (letterboxed) for the bench stage, and write a data.yaml for ultralytics.

The test split is data.yaml's ``test:`` entry when it has one; otherwise a seeded fraction
(``data.split.test``) of the training images, which the data.yaml written for training then
leaves out. Search and training never see it.

The written data.yaml's ``train:`` and ``val:`` are list files of the absolute paths of exactly
the images this stage checked, never folders: a folder would be read again by ultralytics'
own rules (every image below it), which differ from a list file's or a nested layout's split.
ultralytics finds each label by swapping the last ``images`` folder of the listed path for
``labels``, the rule the check used on the same path.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import yaml

from tango_ci.context import StageContext
from tango_ci.data.dataset import held_out
from tango_ci.data.yolo import YoloDataset, check_dataset, load_split, relative_name
from tango_ci.exceptions import SpecError, TangoError
from tango_ci.rundir import write_json
from tango_ci.spec import find_repo_root

TRAIN_LIST = "train.txt"
# problems the stage's error lists, then one line with the total (tango data check prints as
# many); the check keeps no more in memory
MAX_SHOWN_PROBLEMS = 200
VAL_LIST = "val.txt"
# str.splitlines() splits at these, and ultralytics reads a list file with it
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


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


def _training_yaml(folder: Path, dataset: YoloDataset) -> dict:
    """data.yaml for ultralytics: train and val only, each a list file of its images."""
    lists = {}
    for split, name in (("train", TRAIN_LIST), ("val", VAL_LIST)):
        _write_list(folder / name, dataset.images[split], dataset.root)
        lists[split] = str(folder.resolve() / name)
    written = {
        "path": str(dataset.root),
        **lists,
        "names": {i: n for i, n in enumerate(dataset.names)},
    }
    if dataset.keypoints:  # ultralytics then reads a pose row's box, as the check did
        written["kpt_shape"] = list(dataset.keypoints)
    return written


def _write_list(path: Path, images: tuple[Path, ...], root: Path) -> None:
    """A list file ultralytics reads back as ``images``: one absolute path a line."""
    for image in images:
        if not image.is_absolute() or _LINE_BREAKS & set(str(image)):
            raise TangoError(
                f"{relative_name(image, root)!r}: a file name with a line break cannot be "
                "handed to ultralytics (it reads a list file one path a line); rename it"
            )
    path.write_text("".join(f"{image}\n" for image in images), encoding="utf-8")


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
    given, stats, problems = check_dataset(
        root,
        find_repo_root(spec.folder),
        max_problems=MAX_SHOWN_PROBLEMS,
        max_bad_fraction=spec.data.max_bad_fraction,
    )
    if problems or given is None:  # check_dataset gives no dataset without problems
        raise DatasetError(problems)
    for warning in stats.pop("warnings", []):
        ctx.reporter.log(f"warning: {warning}")
    dataset = draw_test(given, spec.data.split.test, spec.data.split.seed)
    drawn = dataset is not given
    folder = ctx.folder
    data_yaml = folder / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(_training_yaml(folder, dataset), sort_keys=False))
    files = {"train": [relative_name(p, dataset.root) for p in dataset.images["train"]]}
    outputs = {"data": "data.yaml", "train-list": TRAIN_LIST, "val-list": VAL_LIST}
    for split in ("val", "test"):
        if split not in dataset.images:
            continue
        loaded = load_split(dataset, split, spec.data.image_size)
        _save(folder / f"{split}.npz", loaded)
        files[split] = loaded["files"]
        outputs[split] = f"{split}.npz"
        if drawn and split == "test":  # check_dataset counted them as training images
            boxes = sum(len(b) for b in loaded["boxes"])
            stats["images"] |= {"train": len(dataset.images["train"]), "test": len(files[split])}
            stats["boxes"] |= {"train": stats["boxes"]["train"] - boxes, "test": boxes}
    write_json(folder / "classes.json", list(dataset.names))
    write_json(folder / "files.json", files)
    write_json(folder / "stats.json", stats)
    for name in ("classes.json", "files.json", "stats.json"):
        outputs[name.split(".")[0]] = name
    for key, name in outputs.items():
        ctx.recorder.output_file(key, folder / name)
    ctx.recorder.inputs["dataset"] = {"path": str(root), "fingerprint": stats["fingerprint"]}
    ctx.reporter.log(
        f"{len(dataset.names)} classes; images (boxes): "
        + ", ".join(f"{s} {n} ({stats['boxes'].get(s, 0)})" for s, n in stats["images"].items())
    )
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
