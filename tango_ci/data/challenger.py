"""The images a champion/challenger gate scores (``gate.challenger``): ``new.npz`` from the
folder of images labelled since production, ``holdout.npz`` from the frozen holdout.

Both are read like the dataset (class folders, images confined to the repository, each file
checked and decoded by the same code, so refused for the same reasons) and mapped to the
project's classes by name. An image that is also in the training or validation data is
refused: a model scored on images it trained on proves nothing. An image that cannot be read is
refused too, in one line naming it (relative to the repository) and why, rather than skipped
as the dataset's are within ``data.max_bad_fraction``: the gate compares two models on exactly
these images, and the stage's hand-off has no place to record one left out.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from tango_ci.data.dataset import read_checked, scan_imagefolder
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
            f"{_shown(root / unknown[0], limit)}: class '{unknown[0]}' is not one of the "
            f"project's classes ({', '.join(classes)})"
        )
    images, labels, files = [], [], []
    for item in items:
        digest, pixels, reason = read_checked(item.path, image_size)
        if pixels is None:
            raise TangoError(
                f"{_shown(item.path, limit)}: not a readable image ({reason}); fix or remove it"
            )
        if digest in trained:
            raise TangoError(
                f"{_shown(item.path, limit)}: the same image is in the training data "
                f"({trained[digest]}); a model scored on images it trained on proves nothing"
            )
        images.append(pixels)
        label = classes.index(found[item.label])
        labels.append(label)
        files.append(
            {"path": item.path.relative_to(root).as_posix(), "sha256": digest, "label": label}
        )
    return np.stack(images), np.asarray(labels, dtype=np.int64), files


def _shown(path: Path, repository: Path | None) -> str:
    """``path`` relative to the repository (no host folders in a message), else relative to
    the working directory where it is below it."""
    if repository is not None:
        with contextlib.suppress(ValueError):
            return path.relative_to(repository).as_posix()
    return display(path)


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
                f"{_shown(challenger.holdout_resolved, limit)}: the holdout has no images "
                "(gate.challenger.holdout)"
            )
        new = sets[NEW]
        if new is not None:
            shared = {f["sha256"] for f in new[2]} & {f["sha256"] for f in held[2]}
            if shared:
                path = next(f["path"] for f in held[2] if f["sha256"] in shared)
                raise TangoError(
                    f"{_shown(challenger.holdout_resolved / path, limit)}: also in the new "
                    "data; the holdout must stay apart"
                )
        sets[HOLDOUT] = held
    return sets
