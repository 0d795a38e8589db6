"""Class folders as real users have them: names that are not UTF-8, classes whose images are
all unreadable, files of other types and images in subfolders, editor lock links, the same
photo in two classes. Each is either read correctly or said in one line; none is a
traceback or silence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tango_ci.data.dataset import TooManyBadImages, build_arrays
from tango_ci.data.layout import DataOutside, imagefolder_problem, unread_folders
from tango_ci.exceptions import TangoError
from tango_ci.printable import printable
from tests.conftest import MINIMAL_PROJECT, write_project


def _folder(root: Path, classes: dict[str, int]) -> Path:
    for index, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            colour = (index * 80 % 256, i * 20 % 256, 40)
            Image.new("RGB", (8, 8), colour).save(root / name / f"{name}{i}.png")
    return root


def _build(root: Path, **kwargs) -> dict:
    options = {"image_size": 8, "val_fraction": 0.25, "seed": 0, "max_bad_fraction": 0.3}
    return build_arrays(root, **{**options, **kwargs}, limit=root.parent)


def test_a_file_name_that_is_not_utf8_is_an_unreadable_image_named_by_its_bytes(
    tmp_path: Path,
) -> None:
    root = _folder(tmp_path / "d", {"red": 6, "green": 6})
    with open(os.fsencode(root / "red") + b"/caf\xe9.png", "wb") as handle:
        Image.new("RGB", (8, 8)).save(handle, "PNG")
    built = _build(root)
    assert built["bad"] == [
        {"path": "red/caf\\xe9.png", "reason": "its file name is not UTF-8; rename it"}
    ]
    json.dumps(built["files"]), json.dumps(built["bad"])  # what the stage writes
    assert len(built["files"]) == 12


def test_a_class_folder_name_that_is_not_utf8_is_refused_in_one_line(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"red": 4, "green": 4})
    os.rename(root / "green", os.fsencode(root) + b"/gr\xfcn")
    problem = imagefolder_problem(root)
    assert problem is not None and "gr\\xfcn" in problem and "not UTF-8" in problem
    with pytest.raises(TangoError) as info:
        _build(root)
    assert "gr\\xfcn: a class folder whose name is not UTF-8" in info.value.message
    assert printable("caf\udce9") == "caf\\xe9"  # a log line can print it


def test_a_class_without_one_readable_training_image_is_refused(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"red": 10, "green": 10})
    (root / "yellow").mkdir()
    for i in range(4):
        (root / "yellow" / f"y{i}.jpg").write_bytes(b"")
    with pytest.raises(TangoError) as info:
        _build(root, max_bad_fraction=0.5)
    assert info.value.message.endswith(
        "the class yellow has no readable training image (4 unreadable; first: yellow/y0.jpg "
        "(an empty file (0 bytes))); fix its images or remove the folder"
    )


def test_too_many_bad_images_are_all_listed_with_their_reasons(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"red": 8, "green": 8})
    for i in range(5):
        (root / "red" / f"text{i}.png").write_text("not an image")
    with pytest.raises(TooManyBadImages) as info:
        _build(root, max_bad_fraction=0.01)
    assert len(info.value.bad_files) == 5
    assert "; and 2 more, listed above" in info.value.message
    assert "cannot identify image file" in info.value.message
    assert str(tmp_path) not in json.dumps(info.value.bad_files)  # no host folders in reasons


def test_files_of_other_types_and_images_in_subfolders_are_said(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"red": 4, "green": 4})
    (root / "yellow").mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8)).save(root / "yellow" / f"y{i}.gif")
    (root / "red" / "photo.jfif").write_bytes(b"x")
    (root / "red" / "Thumbs.db").write_bytes(b"x")
    (root / "red" / ".DS_Store").write_bytes(b"x")
    (root / "green" / "more" / "deeper").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "green" / "more" / "deeper" / "g.png")
    assert unread_folders(root) == [
        "yellow: no image of an accepted type (.gif: 3); not a class",
        "1 file(s) in class folders skipped, of no accepted image type (.jfif: 1; first: "
        "red/photo.jfif); accepted: .bmp .jpeg .jpg .mpo .png .tif .tiff .webp",
        "1 image(s) in subfolders of class folders are not read (first: "
        "green/more/deeper/g.png); a class is the images directly in it",
    ]


def test_a_link_that_is_read_must_be_inside_and_other_links_are_ignored(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"red": 4, "green": 4})
    (root / "red" / ".#red0.png").symlink_to("root@host.1234:1700000000")  # an editor's lock
    (root / "red" / "notes.txt").symlink_to("/etc/hostname")
    assert len(_build(root)["files"]) == 8
    (root / "red" / "broken.png").symlink_to("nowhere.png")  # an unreadable image, counted
    built = _build(root)
    assert len(built["files"]) == 8
    assert [(b["path"], b["reason"]) for b in built["bad"]] == [
        ("red/broken.png", "image file refused: a broken symbolic link")
    ]
    with pytest.raises(TooManyBadImages, match=r"red/broken\.png \(image file refused: a bro"):
        _build(root, max_bad_fraction=0.05)
    (root / "red" / "out.png").symlink_to("/nonexistent/x.png")  # broken, and outside
    with pytest.raises(DataOutside, match=r"out\.png: a broken symbolic link or a link loop"):
        _build(root)


def test_the_same_image_in_two_classes_is_said(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"red": 6, "green": 6})
    (root / "green" / "copy.png").write_bytes((root / "red" / "red0.png").read_bytes())
    warnings = _build(root)["warnings"]
    assert any(
        w.startswith("1 image(s) are identical to one of another class (conflicting labels)")
        for w in warnings
    ), warnings


def test_the_data_stage_lists_every_bad_file_on_its_own_unwrapped_line(spec_repo: Path) -> None:
    spec = MINIMAL_PROJECT.replace("  synth: {images_per_class: 10, size: 16}\n", "")
    spec = spec.replace(
        "  format: imagefolder\n", "  format: imagefolder\n  max_bad_fraction: 0.01\n"
    )
    project = write_project(spec_repo, "demo", spec).parent
    root = _folder(project / "data", {"red": 6, "green": 6})
    long = "x" * 150
    for name in (f"{long}.png", "b.png", "c.png", "d.png"):
        (root / "red" / name).write_bytes(b"")
    done = subprocess.run(
        [sys.executable, "-m", "tango_ci", "run", "projects/demo", "--until", "data"],
        cwd=spec_repo, capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"},
    )  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    lines = said.splitlines()
    assert f"  unreadable image: red/{long}.png (an empty file (0 bytes))" in lines  # unwrapped
    assert sum(line.startswith("  unreadable image: red/") for line in lines) == 4
    assert "Traceback" not in said


def test_a_held_out_split_without_an_image_of_a_class_is_said(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"big": 20, "few": 3, "one": 1})
    warnings = _build(root, test_fraction=0.2)["warnings"]
    assert [w for w in warnings if "cannot be measured" in w] == [
        "the val split has no image of the class(es) one: how well they are recognised "
        "cannot be measured there; add images of them",
        "the test split has no image of the class(es) one: how well they are recognised "
        "cannot be measured there; add images of them",
    ]
