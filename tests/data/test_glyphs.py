"""Synthetic glyphs (``synth.kind: glyphs``): deterministic, complete, distinct classes, and the
``shapes`` kind left exactly as it was."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tango_ci import api
from tango_ci.data.layout import imagefolder_problem
from tango_ci.data.synth import KINDS, STAMP, SynthRequest, synthesize
from tango_ci.data.synth_glyphs import GLYPHS, glyph_mask
from tango_ci.exceptions import UnknownNameError, UnsupportedRequestError
from tests.conftest import MINIMAL_PROJECT, REPO, write_project

#: the pixels of SynthRequest(images_per_class=3, size=32, seed=7) of the shapes kind, taken
#: before glyphs existed: a change here changes every shapes dataset made so far
SHAPES_PIXELS = "21157959876d25fb722730231fe1117f79f660eddf3af184c50ee845e9bfb832"


def _pixels_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.png")):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(np.asarray(Image.open(path)).tobytes())
    return h.hexdigest()


def _bytes_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.png")):
        h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def _glyphs(out: Path, **fields) -> SynthRequest:
    return SynthRequest(out=out, kind="glyphs", **{"images_per_class": 2, "size": 24, **fields})


def test_shapes_images_and_stamp_are_unchanged(tmp_path: Path) -> None:
    synthesize(SynthRequest(out=tmp_path / "s", images_per_class=3, size=32, seed=7))
    assert _pixels_digest(tmp_path / "s") == SHAPES_PIXELS
    # the stamp of a shapes folder made before kinds existed still matches: it is left alone
    assert json.loads((tmp_path / "s" / STAMP).read_text()) == {
        "task": "classification",
        "images_per_class": 3,
        "size": 32,
        "seed": 7,
        "classes": ["circle", "square", "triangle"],
        "generator": 1,
    }


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    synthesize(_glyphs(tmp_path / "a", seed=3))
    synthesize(_glyphs(tmp_path / "b", seed=3))
    synthesize(_glyphs(tmp_path / "c", seed=4))
    assert _bytes_digest(tmp_path / "a") == _bytes_digest(tmp_path / "b")
    assert _pixels_digest(tmp_path / "a") != _pixels_digest(tmp_path / "c")
    for path in (tmp_path / "a").rglob("*.png"):
        other = tmp_path / "c" / path.relative_to(tmp_path / "a")
        assert np.asarray(Image.open(path)).tobytes() != np.asarray(Image.open(other)).tobytes()


def test_every_class_has_its_images_at_the_requested_size(tmp_path: Path) -> None:
    result = synthesize(_glyphs(tmp_path / "g", images_per_class=3, size=40))
    assert len(GLYPHS) >= 10 and len(set(GLYPHS)) == len(GLYPHS)
    assert result["images"] == {glyph: 3 for glyph in GLYPHS}
    assert imagefolder_problem(tmp_path / "g") is None
    for glyph in GLYPHS:
        for path in (tmp_path / "g" / glyph).glob("*.png"):
            image = Image.open(path)
            assert image.size == (40, 40) and image.mode == "RGB", path
    stamp = json.loads((tmp_path / "g" / STAMP).read_text())
    assert stamp["kind"] == "glyphs" and stamp["classes"] == list(GLYPHS)


def test_images_are_not_flat(tmp_path: Path) -> None:
    synthesize(_glyphs(tmp_path / "g", images_per_class=2, size=32))
    for path in (tmp_path / "g").rglob("*.png"):
        pixels = np.asarray(Image.open(path), dtype=np.float32)
        assert pixels.std() > 5, path  # a glyph, texture and noise, not one colour


def test_classes_differ_in_shape() -> None:
    """Every pair of glyphs overlaps by well under the whole, at the best of 36 rotations."""
    size = 32
    angles = np.linspace(0, 2 * math.pi, 36, endpoint=False)
    rotated = {glyph: [glyph_mask(glyph, size, a) for a in angles] for glyph in GLYPHS}
    for i, first in enumerate(GLYPHS):
        mask = rotated[first][0]
        assert mask.mean() > 0.1, first
        for second in GLYPHS[i + 1 :]:
            best = max(
                np.minimum(mask, other).sum() / np.maximum(mask, other).sum()
                for other in rotated[second]
            )
            assert best < 0.9, (first, second, best)


def test_glyphs_are_refused_for_detection_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedRequestError, match="kinds for detection: shapes"):
        synthesize(_glyphs(tmp_path / "d", task="detection"))
    assert not any(tmp_path.iterdir())


def test_unknown_kind_and_class_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="shapes, glyphs"):
        SynthRequest(out=tmp_path / "x", kind="letters")
    with pytest.raises(Exception, match="unknown glyphs class"):
        synthesize(_glyphs(tmp_path / "x", classes=("circle", "blob")))


def test_schema_lists_every_kind() -> None:
    schema = json.loads((REPO / "schemas" / "project.schema.json").read_text())
    synth = schema["$defs"]["data"]["properties"]["synth"]["properties"]
    assert synth["kind"]["enum"] == list(KINDS)


def test_project_synth_passes_the_kind(spec_repo: Path) -> None:
    text = MINIMAL_PROJECT.replace(
        "synth: {images_per_class: 10, size: 16}",
        "synth: {kind: glyphs, images_per_class: 2, size: 16}",
    )
    assert text != MINIMAL_PROJECT
    write_project(spec_repo, "demo", text)
    result = api.synth_project_data(spec_repo / "projects" / "demo")
    assert result["images"] == {glyph: 2 for glyph in GLYPHS}
