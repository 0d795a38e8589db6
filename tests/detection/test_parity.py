"""Export parity for detection: ``export.tolerance`` is an absolute difference, as documented,
with box coordinates compared as fractions of the input size."""

from __future__ import annotations

import numpy as np
import pytest

from tango_ci.detection.postprocess import normalise_boxes
from tango_ci.detection.stages import parity_check
from tango_ci.export import ParityError

SIZE = 640


def _dense(seed: int = 0) -> np.ndarray:
    """A raw (1, 4 + 2 classes, anchors) head output: boxes in pixels, scores in 0..1."""
    rng = np.random.default_rng(seed)
    boxes = rng.uniform(0, 600, (1, 4, 50))
    return np.concatenate([boxes, rng.uniform(0, 1, (1, 2, 50))], 1).astype(np.float32)


def test_score_difference_beyond_tolerance_is_refused() -> None:
    expected = _dense()
    actual = expected.copy()
    actual[0, 4, 7] += 5e-4
    # relative to the largest output (~600 px) this was 8e-7 and passed a 1e-4 tolerance
    assert 5e-4 / np.abs(expected).max() < 1e-4
    with pytest.raises(ParityError) as caught:
        parity_check(expected, actual, SIZE, SIZE, 1e-4)
    assert caught.value.max_abs == pytest.approx(5e-4, rel=1e-3)
    assert "more than the tolerance 0.0001 of export.tolerance" in caught.value.message


def test_a_score_that_is_not_a_number_is_refused() -> None:
    actual = _dense()
    actual[0, 5, 3] = np.nan  # NaN > tolerance is False: that comparison let it through
    with pytest.raises(ParityError):
        parity_check(_dense(), actual, SIZE, SIZE, 1e-4)


def test_box_difference_is_measured_as_a_fraction_of_the_input() -> None:
    expected = _dense()
    actual = expected.copy()
    actual[0, 0, 3] += 0.032  # 5e-5 of a 640 px input
    check = parity_check(expected, actual, SIZE, SIZE, 1e-4)
    assert check["max_abs"] == pytest.approx(0.032 / SIZE, rel=1e-2)
    assert check["max_abs_raw"] == pytest.approx(0.032, rel=1e-2)
    # the same shift on a 64 px input is 5e-4 of it: refused
    with pytest.raises(ParityError):
        parity_check(expected, actual, 64, 64, 1e-4)


def test_identical_outputs_pass_with_zero_difference() -> None:
    check = parity_check(_dense(), _dense(), SIZE, SIZE, 1e-4)
    assert check["max_abs"] == 0.0 and check["tolerance"] == 1e-4 and check["images"] == 1


def test_normalise_boxes_in_both_layouts() -> None:
    dense = np.zeros((1, 6, 2), np.float32)
    dense[0, :, 0] = [320, 160, 64, 32, 0.5, 0.25]
    out = normalise_boxes(dense, 320, 640)  # height 320, width 640
    assert out[0, :, 0].tolist() == pytest.approx([0.5, 0.5, 0.1, 0.1, 0.5, 0.25])
    end_to_end = np.zeros((1, 300, 6), np.float32)
    end_to_end[0, 0] = [64, 32, 128, 64, 0.9, 2]
    out = normalise_boxes(end_to_end, 320, 640)
    assert out[0, 0].tolist() == pytest.approx([0.1, 0.1, 0.2, 0.2, 0.9, 2])
    assert end_to_end[0, 0, 0] == 64  # a copy: the input is left alone
