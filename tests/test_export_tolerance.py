"""``export.tolerance`` is relative to the outputs' scale: float32 rounding of large logits
passes, a genuinely different ONNX model does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tango_ci.export import ParityError, export_onnx, parity

SHAPE = (3, 32, 32)


def _large_logit_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(SHAPE)), 100))
    with torch.no_grad():
        model[1].weight.mul_(1e5)  # logits around 1e5
    return model.eval()


def _batch() -> np.ndarray:
    return np.random.default_rng(0).random((16, *SHAPE), dtype=np.float32)


def test_large_logits_pass_despite_float32_rounding(tmp_path: Path) -> None:
    model = _large_logit_model()
    export_onnx(model, tmp_path / "m.onnx", (1, *SHAPE), simplify=False)
    check = parity(model, tmp_path / "m.onnx", _batch(), 1e-4)
    assert check["scale"] > 1e4
    assert check["max_rel"] <= 1e-4
    assert check["top1_agreement"] == 1.0


def test_a_different_onnx_model_still_fails(tmp_path: Path) -> None:
    model = _large_logit_model()
    export_onnx(model, tmp_path / "m.onnx", (1, *SHAPE), simplify=False)
    with torch.no_grad():
        model[1].bias.add_(50.0)  # the exported file no longer computes what the model does
    with pytest.raises(ParityError) as caught:
        parity(model, tmp_path / "m.onnx", _batch(), 1e-4)
    message = caught.value.message
    assert "\n" not in message
    assert "more than the tolerance 0.0001 of export.tolerance" in message
    assert caught.value.max_abs == pytest.approx(50.0, abs=0.5)
    assert f"by up to {caught.value.max_abs:.3g}" in message
    assert f"{caught.value.max_rel:.3g} relative to max(1, largest |output|" in message


def test_small_outputs_keep_the_absolute_meaning() -> None:
    from tango_ci.export.onnx_export import compare_outputs

    expected = np.array([[0.5, -0.25, 0.0]], dtype=np.float32)
    assert compare_outputs(expected, expected + 5e-5, 1e-4)["max_abs"] == pytest.approx(
        5e-5, rel=1e-3
    )
    with pytest.raises(ParityError):
        compare_outputs(expected, expected + 5e-4, 1e-4)


def test_large_outputs_are_compared_to_their_scale() -> None:
    from tango_ci.export.onnx_export import compare_outputs

    expected = np.array([[1.3e5, -2.0, 7.0]], dtype=np.float32)
    rounded = expected.copy()
    rounded[0, 0] = np.nextafter(rounded[0, 0], np.float32(np.inf))  # 0.0078 apart
    assert compare_outputs(expected, rounded, 1e-4)["max_abs"] > 1e-4
    different = expected.copy()
    different[0, 1] += 100.0  # small next to 1.3e5 in absolute terms, but 1e-4 x 1.3e5 is 13
    with pytest.raises(ParityError):
        compare_outputs(expected, different, 1e-4)


def test_an_output_that_is_not_a_number_fails() -> None:
    from tango_ci.export.onnx_export import compare_outputs

    expected = np.array([[0.5, -0.25, 0.0]], dtype=np.float32)
    broken = expected.copy()
    broken[0, 2] = np.nan  # NaN > tolerance is False: a comparison that way round passed it
    with pytest.raises(ParityError):
        compare_outputs(expected, broken, 1e-4)
    with pytest.raises(ParityError):
        compare_outputs(broken, expected, 1e-4)
