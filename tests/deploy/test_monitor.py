"""tango monitor: drift between a served model's answers and the bundle's reference is found
when the inputs shift, and not found when they come from the reference's own distribution."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tango_ci.data.dataset import load_split
from tango_ci.exceptions import TangoError
from tango_ci.monitor import monitor
from tango_ci.monitor.drift import chi2_test, ks_test, mmd_test
from tango_ci.runtime import Bundle
from tango_ci.runtime.logs import PredictionLog
from tango_ci.runtime.server import Service

pytestmark = pytest.mark.slow


def _serve_images(bundle: Path, images: np.ndarray, log: Path) -> None:
    """Answer images as serve's image endpoint does, logging each."""
    import io

    from PIL import Image

    service = Service(Bundle(bundle), log=PredictionLog(log))
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        service.image(buffer.getvalue())
    service.log.close()


def _evaluation_images(measured) -> np.ndarray:
    _, run = measured
    data = run.stage_dir("data")
    split = "test" if (data / "test.npz").is_file() else "val"
    return load_split(data, split)[0]


def test_the_reference_is_kept_in_the_bundle_and_hashed(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert "reference.json" in manifest["files"]
    reference = json.loads((bundle / "reference.json").read_text())
    assert reference["images"] == len(reference["records"]) > 0


def test_no_drift_on_the_reference_distribution_and_drift_on_dark_images(
    measured, bundle: Path, tmp_path: Path
) -> None:
    images = _evaluation_images(measured)
    same = np.concatenate([images] * max(1, 60 // len(images) + 1))[:60]
    _serve_images(bundle, same, tmp_path / "same.sqlite")
    calm = monitor(tmp_path / "same.sqlite", bundle, tmp_path / "calm", permutations=200)
    assert calm["drift"] is False, calm["checks"]
    dark = (same.astype(np.float32) * 0.25).astype(np.uint8)  # a camera that lost its light
    _serve_images(bundle, dark, tmp_path / "dark.sqlite")
    shifted = monitor(tmp_path / "dark.sqlite", bundle, tmp_path / "shifted", permutations=200)
    assert shifted["drift"] is True
    assert shifted["checks"]["inputs_mmd"]["drift"] is True
    report = (tmp_path / "shifted" / "drift.md").read_text()
    assert report.startswith("# Drift report: **drift**")
    assert (tmp_path / "shifted" / "drift-outputs.png").stat().st_size > 1000


def test_too_few_answers_are_refused_in_one_line(bundle: Path, tmp_path: Path) -> None:
    images = np.zeros((5, 16, 16, 3), np.uint8)
    _serve_images(bundle, images, tmp_path / "few.sqlite")
    with pytest.raises(TangoError, match=r"5 records of version .* needs at least 20"):
        monitor(tmp_path / "few.sqlite", bundle, tmp_path / "out")


def test_the_tests_hold_their_level_and_find_a_shift() -> None:
    rng = np.random.default_rng(0)
    false_alarms = sum(
        mmd_test(rng.normal(size=(60, 3)), rng.normal(size=(60, 3)), 100, seed)["p_value"] < 0.05
        for seed in range(20)
    )
    assert false_alarms <= 3  # about 1 in 20 expected
    shifted = mmd_test(rng.normal(size=(60, 3)), rng.normal(0.8, 1, size=(60, 3)), 200)
    assert shifted["p_value"] < 0.01
    ks = ks_test(rng.normal(size=(200, 2)), np.c_[rng.normal(size=200), rng.normal(1, 1, 200)])
    assert ks["drift"] and ks["p_values"][1] < ks["threshold"] < ks["p_values"][0]
    mix = chi2_test(np.r_[np.zeros(100), np.ones(100)], np.r_[np.zeros(180), np.ones(20)], 2)
    assert mix["p_value"] < 1e-6 and mix["current"] == [180, 20]
