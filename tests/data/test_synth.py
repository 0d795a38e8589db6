"""Synthetic shapes: deterministic, complete, and careful with existing folders."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tango_ci import api
from tango_ci.data.layout import imagefolder_problem
from tango_ci.data.synth import SynthOutputExists, SynthRequest, synthesize
from tests.conftest import write_project


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.png")):
        h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_images_other_seed_other_images(tmp_path: Path) -> None:
    a = synthesize(SynthRequest(out=tmp_path / "a", images_per_class=4, size=16, seed=1))
    synthesize(SynthRequest(out=tmp_path / "b", images_per_class=4, size=16, seed=1))
    synthesize(SynthRequest(out=tmp_path / "c", images_per_class=4, size=16, seed=2))
    assert a["images"] == {"circle": 4, "square": 4, "triangle": 4}
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")
    assert imagefolder_problem(tmp_path / "a") is None
    image = Image.open(tmp_path / "a" / "circle" / "circle_00000.png")
    assert image.size == (16, 16) and image.mode == "RGB"


def test_shapes_differ_from_their_background(tmp_path: Path) -> None:
    synthesize(SynthRequest(out=tmp_path / "s", images_per_class=3, size=48, seed=0))
    for path in (tmp_path / "s").rglob("*.png"):
        pixels = np.asarray(Image.open(path), dtype=np.float32)
        # the shape is a flat colour far from the background: many pixels share it exactly
        _colours, counts = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
        assert counts.max() >= 0.03 * 48 * 48, path


def test_same_request_is_left_alone_and_other_data_is_not_overwritten(tmp_path: Path) -> None:
    request = SynthRequest(out=tmp_path / "d", images_per_class=2, size=16)
    assert synthesize(request)["created"] is True
    assert synthesize(request)["created"] is False
    with pytest.raises(SynthOutputExists):
        synthesize(SynthRequest(out=tmp_path / "d", images_per_class=3, size=16))
    assert len(list((tmp_path / "d").rglob("*.png"))) == 6
    assert (
        synthesize(SynthRequest(out=tmp_path / "d", images_per_class=3, size=16), force=True)[
            "images"
        ]["circle"]
        == 3
    )


def test_project_synth_uses_the_spec(spec_repo: Path) -> None:
    write_project(spec_repo, "demo")
    result = api.synth_project_data(spec_repo / "projects" / "demo")
    assert result["images"] == {"circle": 10, "square": 10, "triangle": 10}
    assert Image.open(next((spec_repo / "projects/demo/data/square").glob("*.png"))).size == (
        16,
        16,
    )
