"""A dataset's decoded images in one array, grouped into splits in place.

Each image is decoded straight into its row of one array made for all of them (a row never
written, an unreadable image's, never takes memory), and once the splits are known the rows
are reordered in place so that each split is one slice of it. Stacking per-image arrays held
every image twice at the peak, and the small arrays freed after it stay with the process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tango_ci.exceptions import TangoError


def pixels_for(root: Path, count: int, size: int) -> np.ndarray:
    """The one array the images are decoded into, or one line saying how much
    memory they need when the machine cannot give it."""
    try:
        return np.empty((count, size, size, 3), np.uint8)
    except MemoryError:
        need = count * size * size * 3 / 2**30
        raise TangoError(
            f"{root}: {count} images at {size} px need {need:.1f} GiB of memory, more than "
            "this machine gives; lower data.image_size or train on a larger runner"
        ) from None


def permute_rows(array: np.ndarray, order: list[int]) -> None:
    """Reorder ``array``'s rows in place so that row ``k`` becomes the former row
    ``order[k]`` (``order`` a permutation of its rows), holding one row aside at a time."""
    if sorted(order) != list(range(len(array))):
        raise ValueError("order is not a permutation of the rows")
    if not len(array):
        return
    done = [False] * len(order)
    aside = np.empty_like(array[0])
    for start in range(len(order)):
        if done[start] or order[start] == start:
            done[start] = True
            continue
        aside[...] = array[start]
        row = start
        while True:
            done[row] = True
            source = order[row]
            if source == start:
                array[row] = aside
                break
            array[row] = array[source]
            row = source


def split_slices(array: np.ndarray, rows_of: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """Each split's rows (``rows_of``: the row indices of each split, in order) as one slice
    of ``array``, reordered in place; rows of no split end up after them all."""
    kept = [row for rows in rows_of.values() for row in rows]
    chosen = set(kept)
    permute_rows(array, kept + [row for row in range(len(array)) if row not in chosen])
    slices, start = {}, 0
    for split, rows in rows_of.items():
        slices[split] = array[start : start + len(rows)]
        start += len(rows)
    return slices
