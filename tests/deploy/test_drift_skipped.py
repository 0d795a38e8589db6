"""A drift test that cannot run is said to be skipped, and why, in drift.json, drift.md and by
``tango monitor``; it is never left out in silence."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from tango_ci.cli import app
from tango_ci.monitor import MIN_RECORDS, REFERENCE, monitor, write_reference
from tango_ci.runtime import Bundle
from tango_ci.runtime.logs import PredictionLog
from tango_ci.runtime.server import Service
from tests.deploy.tiny_bundle import SIZE, tiny_bundle, write_manifest

SKIPPED = "input drift not tested: the bundle's reference has 18 image records, 20 needed"


def _images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)


def _bundle(folder: Path, references: int) -> Path:
    """The tiny bundle with a reference of ``references`` images, hashed in its manifest."""
    tiny_bundle(folder)
    reference = write_reference(folder, _images(references, 1), "test")
    (folder / REFERENCE).write_text(json.dumps(reference))
    write_manifest(folder)
    return folder


def _log(bundle: Path, path: Path, count: int = 30) -> Path:
    """``count`` images answered and logged as serve's image endpoint does."""
    service = Service(Bundle(bundle), log=PredictionLog(path))
    for image in _images(count, 2):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        service.image(buffer.getvalue())
    service.log.close()
    return path


def test_a_short_reference_skips_the_input_test_and_says_so(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "bundle", references=18)
    log = _log(bundle, tmp_path / "log.sqlite")
    result = monitor(log, bundle, tmp_path / "out", permutations=20)
    assert "inputs_mmd" not in result["checks"] and len(result["checks"]) == 3
    assert result["skipped"]["inputs_mmd"].startswith(SKIPPED)
    saved = json.loads((tmp_path / "out" / "drift.json").read_text())
    assert saved["skipped"] == result["skipped"]
    report = (tmp_path / "out" / "drift.md").read_text()
    assert "| input image statistics, MMD (permutation p-value) | – | not tested" in report
    assert SKIPPED in report

    printed = CliRunner().invoke(
        app, ["monitor", str(log), "--bundle", str(bundle), "--out", str(tmp_path / "cli")]
    )
    assert printed.exit_code in (0, 3), printed.output
    assert SKIPPED in printed.output


def test_a_reference_large_enough_runs_every_test(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "bundle", references=MIN_RECORDS)
    log = _log(bundle, tmp_path / "log.sqlite")
    result = monitor(log, bundle, tmp_path / "out", permutations=20)
    assert "inputs_mmd" in result["checks"] and result["skipped"] == {}
    assert "not tested" not in (tmp_path / "out" / "drift.md").read_text()
