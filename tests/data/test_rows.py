"""The classification data stage decodes every image into one array and groups it into splits
in place: the split arrays are what stacking gave, for every permutation shape, and a failed
order is refused before anything moves."""

from __future__ import annotations

import numpy as np
import pytest

from tango_ci.data.rows import permute_rows, split_slices


def _rows(count: int) -> np.ndarray:
    return np.arange(count * 6, dtype=np.uint8).reshape(count, 2, 3)


@pytest.mark.parametrize("seed", range(6))
def test_rows_are_permuted_in_place_as_fancy_indexing_would(seed: int) -> None:
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 40))
    array, order = _rows(count), [int(i) for i in rng.permutation(count)]
    expected = array[order].copy()
    address = array.__array_interface__["data"][0]
    permute_rows(array, order)
    assert np.array_equal(array, expected)
    assert array.__array_interface__["data"][0] == address  # in place, no copy handed back


def test_splits_are_slices_of_the_one_array_with_the_rows_each_split_names() -> None:
    array = _rows(9)
    original = array.copy()
    rows_of = {"train": [0, 2, 5, 8], "val": [7, 1], "test": [4]}  # 3 and 6: unreadable
    slices = split_slices(array, rows_of)
    for split, rows in rows_of.items():
        assert np.array_equal(slices[split], np.stack([original[r] for r in rows]))
        assert np.shares_memory(slices[split], array)  # a view: the images are held once
    assert list(slices) == ["train", "val", "test"]


def test_an_order_that_is_not_a_permutation_moves_nothing() -> None:
    array = _rows(3)
    before = array.copy()
    with pytest.raises(ValueError, match="not a permutation"):
        permute_rows(array, [0, 0, 1])
    assert np.array_equal(array, before)
    permute_rows(_rows(0), [])  # an empty dataset: nothing to move
