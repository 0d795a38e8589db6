"""A data folder made by ``data.synth`` follows its settings: made again when they change,
but only when its stamp and files show synth made it; other data is used, never deleted."""

from __future__ import annotations

from pathlib import Path

from tango_ci import api
from tango_ci.data.synth import STAMP
from tango_ci.progress import Reporter
from tango_ci.rundir import read_json
from tests.pipeline_helpers import make_repo


class Lines(Reporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        self.lines.append(message)


def _data(project: Path, per_class: int) -> tuple[int, list[str]]:
    """Images the data stage read with ``images_per_class: per_class``, and its log lines."""
    path = project / "project.yaml"
    text = path.read_text()
    path.write_text(text.replace(text.split("images_per_class: ")[1].split(",")[0], str(per_class)))
    lines = Lines()
    run = api.run(project, until="data", reporter=lines)
    return len(read_json(run.stage_dir("data") / "files.json")), lines.lines


def _pngs(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.png"))


def test_changed_settings_make_the_data_again(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "repo", per_class=6, extra_targets="")
    assert _data(project, 6)[0] == 18
    read, lines = _data(project, 9)
    assert read == 27 and _pngs(project / "data") == 27
    assert any("synthesised it again (27 images)" in line for line in lines), lines
    assert [p.name for p in project.iterdir() if p.name.startswith(".data.")] == [".data.lock"]
    assert _data(project, 9) == (27, [])  # up to date: nothing said, nothing made


def test_a_changed_synthesised_folder_is_kept_and_named(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "repo", per_class=6, extra_targets="")
    _data(project, 6)
    mine = project / "data" / "circle" / "circle_00000.png"
    mine.write_bytes((project / "data" / "square" / "square_00000.png").read_bytes())
    read, lines = _data(project, 9)
    assert (
        read == 18 and mine.read_bytes() == (project / "data/square/square_00000.png").read_bytes()
    )
    warnings = [line for line in lines if "not the one data.synth made" in line]
    assert len(warnings) == 1 and "its files differ" in warnings[0], lines
    assert "move it away" in warnings[0] and "\n" not in warnings[0]


def test_added_images_are_kept(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "repo", per_class=6, extra_targets="")
    _data(project, 6)
    extra = project / "data" / "circle" / "my_photo.png"
    extra.write_bytes((project / "data" / "circle" / "circle_00001.png").read_bytes())
    read, lines = _data(project, 9)
    assert read == 19 and extra.is_file()
    assert any("not the one data.synth made" in line for line in lines), lines


def test_a_folder_without_stamp_is_used_as_before(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "repo", per_class=6, extra_targets="")
    _data(project, 6)
    (project / "data" / STAMP).unlink()  # as made before stamps existed, or the user's own
    read, lines = _data(project, 9)
    assert read == 18 and _pngs(project / "data") == 18
    assert any(f"it has no {STAMP} stamp" in line for line in lines), lines


def test_a_pushed_stamp_asking_for_too_much_is_not_made_to_compare(tmp_path: Path) -> None:
    """The stamp is a file of the (untrusted) data folder: one asking for 10^9 images a class
    is refused as not synth's, in a moment, instead of synthesised to compare files."""
    import json
    import time

    project = make_repo(tmp_path / "repo", per_class=6, extra_targets="")
    _data(project, 6)
    stamp = project / "data" / STAMP
    found = json.loads(stamp.read_text())
    for key, value in (("images_per_class", 10**9), ("size", 10**6), ("classes", ["x"])):
        stamp.write_text(json.dumps(found | {key: value}))
        began = time.monotonic()
        read, lines = _data(project, 9)
        assert time.monotonic() - began < 60 and read == 18
        warnings = [line for line in lines if "not the one data.synth made" in line]
        assert len(warnings) == 1 and "asks for more than a project file may" in warnings[0]
