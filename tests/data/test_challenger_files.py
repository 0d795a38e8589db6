"""gate.challenger's new data is read as the dataset is: each file checked (a regular file,
not empty, within the byte limit) before it is hashed or decoded, and a bad one refused in one
line naming it relative to the repository and why, as the data stage says it."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tango_ci.data.challenger import read_labelled
from tango_ci.data.files import MAX_IMAGE_BYTES
from tango_ci.exceptions import TangoError

CLASSES = ["circle", "square"]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with two readable new images, run from a folder outside it (its paths
    would show whole)."""
    root = tmp_path / "repo"
    for name, colour in zip(CLASSES, ("red", "blue"), strict=True):
        (root / "new" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), colour).save(root / "new" / name / "a.png")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    return root


def _refusal(repo: Path) -> str:
    with pytest.raises(TangoError) as refused:
        read_labelled(repo / "new", CLASSES, 8, repo, {})
    return str(refused.value)


def test_readable_new_data_is_read(repo: Path) -> None:
    found = read_labelled(repo / "new", CLASSES, 8, repo, {})
    assert found is not None
    images, labels, files = found
    assert images.shape == (2, 8, 8, 3) and labels.tolist() == [0, 1]
    assert [f["path"] for f in files] == ["circle/a.png", "square/a.png"]


def test_an_empty_file_is_named_relative_to_the_repository_as_empty(repo: Path) -> None:
    """It read '<absolute path>: not a readable image (cannot identify image file '<absolute
    path>')'."""
    (repo / "new" / "square" / "b.png").write_bytes(b"")
    assert _refusal(repo) == (
        "new/square/b.png: not a readable image (an empty file (0 bytes)); fix or remove it"
    )


def test_an_undecodable_file_keeps_the_host_folders_out_of_the_message(repo: Path) -> None:
    (repo / "new" / "square" / "b.png").write_bytes(b"\x89PNG not really")
    said = _refusal(repo)
    assert said.startswith("new/square/b.png: not a readable image (")
    assert str(repo.parent) not in said and "b.png" in said.split("(", 1)[1]


def test_a_file_over_the_byte_limit_is_refused_unread(repo: Path, monkeypatch) -> None:
    """It was read whole with read_bytes() before any check (a sparse 20 GB file)."""
    import tango_ci.data.dataset

    hashed: list[str] = []
    real = tango_ci.data.dataset.sha256
    monkeypatch.setattr(tango_ci.data.dataset, "sha256", lambda p: hashed.append(p.name) or real(p))
    with open(repo / "new" / "circle" / "huge.png", "wb") as handle:  # sparse: no disk used
        handle.truncate(MAX_IMAGE_BYTES + 1)
    assert _refusal(repo) == (
        f"new/circle/huge.png: not a readable image (image file refused: {MAX_IMAGE_BYTES + 1} "
        f"bytes, larger than the {MAX_IMAGE_BYTES} allowed); fix or remove it"
    )
    assert "huge.png" not in hashed


def test_a_gif_named_jpg_is_named_as_one(repo: Path) -> None:
    Image.new("RGB", (8, 8)).save(repo / "new" / "circle" / "b.jpg", "GIF")
    assert _refusal(repo) == (
        "new/circle/b.jpg: not a readable image (FormatRefused: a GIF file named .jpg, not one "
        "of the accepted formats (PNG, JPEG, BMP, WEBP, TIFF)); fix or remove it"
    )


def test_an_image_of_the_training_data_is_named_relative_to_the_repository(repo: Path) -> None:
    from tango_ci.data.files import sha256

    trained = {sha256(repo / "new" / "circle" / "a.png"): "circle/0.png"}
    with pytest.raises(TangoError, match=r"^new/circle/a\.png: the same image is in the train"):
        read_labelled(repo / "new", CLASSES, 8, repo, trained)
