"""The images a champion/challenger gate scores (``gate.challenger``): ``new.npz`` from the
folder of images labelled since production, ``holdout.npz`` from the frozen holdout.

Both are read like the dataset (class folders, images confined to the repository) and mapped to
the project's classes by name. An image that is also in the training or validation data is
refused: a model scored on images it trained on proves nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from tango_ci.data.dataset import decode, scan_imagefolder
from tango_ci.data.layout import class_folders
from tango_ci.exceptions import TangoError
from tango_ci.rundir import display

#: the split names the data stage saves them under (``<split>.npz``)
NEW, HOLDOUT = "new", "holdout"


def read_labelled(
    root: Path, classes: list[str], image_size: int, limit: Path | None, trained: dict[str, str]
) -> tuple[np.ndarray, np.ndarray, list[dict]] | None:
    """Images and labels of ``root`` (class folders), or None when it has none yet.

    ``trained``: sha256 -> path of every training and validation image, which must not recur.
    """
    if not root.is_dir() or not class_folders(root):
        return None
    found, items = scan_imagefolder(root, 0.0, 0, limit)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise TangoError(
            f"{display(root / unknown[0])}: class '{unknown[0]}' is not one of the project's "
            f"classes ({', '.join(classes)})"
        )
    images, labels, files = [], [], []
    for item in items:
        raw = item.path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        if digest in trained:
            raise TangoError(
                f"{display(item.path)}: the same image is in the training data "
                f"({trained[digest]}); a model scored on images it trained on proves nothing"
            )
        try:
            images.append(decode(item.path, image_size))
        except Exception as exc:  # any decoder error: name the file
            raise TangoError(f"{display(item.path)}: not a readable image ({exc})") from None
        label = classes.index(found[item.label])
        labels.append(label)
        files.append(
            {"path": item.path.relative_to(root).as_posix(), "sha256": digest, "label": label}
        )
    return np.stack(images), np.asarray(labels, dtype=np.int64), files


def challenger_sets(
    challenger, classes: list[str], image_size: int, limit: Path | None, files: list[dict]
) -> dict[str, tuple[np.ndarray, np.ndarray, list[dict]] | None]:
    """``new`` and (when the spec names one) ``holdout``: arrays and files, or None when the
    folder has no images yet. ``files``: the dataset's files (path, sha256, split)."""
    trained = {f["sha256"]: f["path"] for f in files if f["split"] in ("train", "val")}
    sets = {NEW: read_labelled(challenger.new_resolved, classes, image_size, limit, trained)}
    if challenger.holdout_resolved is not None:
        held = read_labelled(challenger.holdout_resolved, classes, image_size, limit, trained)
        if held is None:
            raise TangoError(
                f"{display(challenger.holdout_resolved)}: the holdout has no images "
                "(gate.challenger.holdout)"
            )
        new = sets[NEW]
        if new is not None:
            shared = {f["sha256"] for f in new[2]} & {f["sha256"] for f in held[2]}
            if shared:
                path = next(f["path"] for f in held[2] if f["sha256"] in shared)
                raise TangoError(
                    f"{display(challenger.holdout_resolved / path)}: also in the new data; "
                    "the holdout must stay apart"
                )
        sets[HOLDOUT] = held
    return sets
