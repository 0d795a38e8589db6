"""Folder layouts other tools write (Roboflow's valid/, a macOS zip's __MACOSX/, names macOS
writes decomposed) and what lies beside split folders: said in one line, never lost silently."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from PIL import Image

from tango_ci.data.dataset import list_imagefolder
from tango_ci.data.layout import imagefolder_problem, unread_folders


def _images(folder: Path, count: int = 2) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", (8, 8), (index * 40, 0, 0)).save(folder / f"{index}.png")


@pytest.mark.parametrize("name", ["valid", "validation"])
def test_roboflow_valid_folder_is_the_validation_split(tmp_path: Path, name: str) -> None:
    """Roboflow exports train/ valid/ test/; ultralytics reads valid/ and validation/ too."""
    for split in ("train", name, "test"):
        for cls in ("cat", "dog"):
            _images(tmp_path / split / cls)
    assert imagefolder_problem(tmp_path) is None and unread_folders(tmp_path) == []
    classes, items = list_imagefolder(tmp_path)
    assert classes == ["cat", "dog"]
    assert {(i.split, i.path.parent.parent.name) for i in items} == {
        ("train", "train"),
        ("val", name),
        ("test", "test"),
    }


def test_a_validation_folder_in_capitals_is_named_in_the_refusal(tmp_path: Path) -> None:
    for split in ("train", "Val"):
        for cls in ("cat", "dog"):
            _images(tmp_path / split / cls)
    assert imagefolder_problem(tmp_path) == (
        "has train/ and Val/: rename Val/ to val/ (the validation split's name)"
    )


def test_train_alone_says_what_to_add(tmp_path: Path) -> None:
    for cls in ("cat", "dog"):
        _images(tmp_path / "train" / cls)
    assert imagefolder_problem(tmp_path).startswith("has train/ without val/ beside it: add val/")


def test_what_lies_beside_split_folders_is_warned_of(tmp_path: Path) -> None:
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            _images(tmp_path / split / cls)
    _images(tmp_path / "bird")
    _images(tmp_path, 1)  # an image at the top
    (tmp_path / "__MACOSX" / "train").mkdir(parents=True)
    (tmp_path / "__MACOSX" / "train" / "._0.png").write_bytes(b"\0\5\26\7")
    assert imagefolder_problem(tmp_path) is None
    assert unread_folders(tmp_path) == [
        "bird: a folder beside train/ and val/ is not read; move it into them",
        "1 image(s) beside train/ and val/ are not read (first: 0.png)",
    ]


def test_a_macos_archive_folder_is_not_a_class_worth_a_word(tmp_path: Path) -> None:
    for cls in ("cat", "dog"):
        _images(tmp_path / cls)
    (tmp_path / "__MACOSX" / "cat").mkdir(parents=True)
    (tmp_path / "__MACOSX" / "cat" / "._0.png").write_bytes(b"\0\5\26\7")
    assert unread_folders(tmp_path) == []


def test_names_differing_only_in_unicode_form_are_said_to(tmp_path: Path) -> None:
    name = "ñandú"
    _images(tmp_path / "train" / unicodedata.normalize("NFD", name))
    _images(tmp_path / "train" / "cat")
    _images(tmp_path / "val" / unicodedata.normalize("NFC", name))
    _images(tmp_path / "val" / "cat")
    problem = imagefolder_problem(tmp_path)
    assert problem is not None and "differ in their Unicode form" in problem
