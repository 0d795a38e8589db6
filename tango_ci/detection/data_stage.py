"""The data stage for YOLO datasets: check every label line, fingerprint, save the validation
split (letterboxed) for the bench stage, and write a data.yaml with absolute paths for
ultralytics."""

from __future__ import annotations

import numpy as np
import yaml

from tango_ci.context import StageContext
from tango_ci.data.yolo import check_dataset, load_split
from tango_ci.exceptions import SpecError
from tango_ci.rundir import write_json
from tango_ci.spec import find_repo_root


class DatasetError(SpecError):
    """A dataset with problems; every problem is printed as file:line:col."""


def run(ctx: StageContext) -> None:
    from tango_ci.data.stage import ensure_data

    spec = ctx.spec
    root = ensure_data(ctx)
    dataset, stats, problems = check_dataset(root, find_repo_root(spec.folder))
    if problems or dataset is None:  # check_dataset gives no dataset without problems
        raise DatasetError(problems)
    folder = ctx.folder
    data_yaml = folder / "data.yaml"
    data_yaml.write_text(
        yaml.safe_dump(
            {
                "path": str(dataset.root),
                "train": str(dataset.images["train"][0].parent.relative_to(dataset.root)),
                "val": str(dataset.images["val"][0].parent.relative_to(dataset.root)),
                "names": {i: n for i, n in enumerate(dataset.names)},
            },
            sort_keys=False,
        )
    )
    val = load_split(dataset, "val", spec.data.image_size)
    counts = np.asarray([len(b) for b in val["boxes"]])
    np.savez(
        folder / "val.npz",
        images=val["images"],
        counts=counts,
        boxes=np.concatenate(val["boxes"]) if counts.sum() else np.zeros((0, 5), np.float32),
    )
    write_json(folder / "classes.json", list(dataset.names))
    write_json(folder / "files.json", {"val": val["files"]})
    write_json(folder / "stats.json", stats)
    for name in ("data.yaml", "val.npz", "classes.json", "files.json", "stats.json"):
        ctx.recorder.output_file(name.split(".")[0], folder / name)
    ctx.recorder.inputs["dataset"] = {"path": str(root), "fingerprint": stats["fingerprint"]}
    ctx.recorder.summary.update(
        {
            "classes": list(dataset.names),
            "images": stats["images"],
            "boxes": stats["boxes"],
            "fingerprint": stats["fingerprint"],
            "image_size": spec.data.image_size,
        }
    )


def load_val(run) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    """Letterboxed validation images, per-image boxes (class, x1, y1, x2, y2), file names."""
    from tango_ci.rundir import read_json

    folder = run.stage_dir("data")
    with np.load(folder / "val.npz") as data:
        images, counts, boxes = data["images"], data["counts"], data["boxes"]
    split = np.split(boxes, np.cumsum(counts)[:-1]) if len(counts) else []
    return images, list(split), read_json(folder / "files.json")["val"]
