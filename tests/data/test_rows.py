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


def test_every_image_keeps_its_label_in_every_split(tmp_path) -> None:
    """One solid colour per class, unreadable files among them and a drawn test split: each
    row of each split's array has its label's colour."""
    from PIL import Image

    from tango_ci.data.dataset import build_arrays

    colours = {"blue": (0, 0, 250), "green": (0, 250, 0), "red": (250, 0, 0)}
    for name, colour in colours.items():
        folder = tmp_path / "data" / name
        folder.mkdir(parents=True)
        for index in range(14):
            Image.new("RGB", (12 + index, 9), colour).save(folder / f"{index}.png")
        (folder / "broken.png").write_bytes(b"\x89PNG not really")
    built = build_arrays(
        tmp_path / "data",
        image_size=8,
        val_fraction=0.2,
        seed=3,
        max_bad_fraction=0.2,
        test_fraction=0.2,
    )
    assert len(built["bad"]) == 3 and set(built["arrays"]) == {"train", "val", "test"}
    for images, labels in built["arrays"].values():
        assert len(images) == len(labels) > 0
        for pixels, label in zip(images, labels, strict=True):
            expected = colours[built["classes"][label]]
            assert (pixels == np.array(expected, np.uint8)).all()
    assert sum(len(labels) for _, labels in built["arrays"].values()) == 42


def test_images_the_machine_has_no_memory_for_are_one_line(tmp_path, monkeypatch) -> None:
    """The operating system refusing the pixels' array (here made to) is a TangoError naming
    what they need, not a MemoryError traceback."""
    from tango_ci.data import rows
    from tango_ci.exceptions import TangoError

    def refuse(shape, dtype):
        raise MemoryError(f"Unable to allocate array with shape {shape}")

    monkeypatch.setattr(rows.np, "empty", refuse)
    with pytest.raises(TangoError, match=r"data: 100000 images at 4096 px need 4687\.5 GiB"):
        rows.pixels_for(tmp_path / "data", 100_000, 4096)
