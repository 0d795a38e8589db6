"""A data folder that ``data.synth`` did not make as the spec now says is used as it is and
said to be so, never deleted by a run (it may be the user's own, or read by another run); the
stamp that says how it was made is a file of the folder, read as data."""

from __future__ import annotations

from pathlib import Path

from tango_ci import api
from tango_ci.data.synth import MAX_STAMP_BYTES, STAMP
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
    counts = read_json(run.stage_dir("data") / "manifest.json")["summary"]["images"]
    said = ", ".join(f"{split} {count}" for split, count in counts.items())
    assert f"3 classes; images: {said}" in lines.lines  # what was read, said once
    others = [line for line in lines.lines if not line.startswith("3 classes; images:")]
    return len(read_json(run.stage_dir("data") / "files.json")), others


def _pngs(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.png"))


def _warnings(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("warning: data folder data is used")]


def test_changed_settings_keep_the_data_and_say_how_to_make_it_again(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "repo", per_class=6, extra_targets="")
    assert _data(project, 6)[0] == 18
    read, lines = _data(project, 9)
    assert read == 18 and _pngs(project / "data") == 18
    [warning] = _warnings(lines)
    assert "data.synth made it with other settings (images_per_class 6 -> 9)" in warning
    assert f"`tango data synth {project} --force` makes it again" in warning
    api.synth_project_data(project, force=True)  # what it says to do
    assert _data(project, 9) == (27, [])  # made as the spec says: nothing more to say


def test_a_folder_without_stamp_is_used_and_named(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "repo", per_class=6, extra_targets="")
    _data(project, 6)
    (project / "data" / STAMP).unlink()  # as made before stamps existed, or the user's own
    read, lines = _data(project, 6)
    assert read == 18 and _pngs(project / "data") == 18
    [warning] = _warnings(lines)
    assert f"it has no readable {STAMP} stamp" in warning


def test_a_pushed_stamp_of_any_shape_is_a_warning_in_a_moment(tmp_path: Path) -> None:
    """A stamp asking for 10^9 images, not an object, nested past the parser's depth, or too
    long: the folder is used as it is with one warning; nothing is synthesised or deleted."""
    import json
    import time

    project = make_repo(tmp_path / "repo", per_class=6, extra_targets="")
    _data(project, 6)
    stamp = project / "data" / STAMP
    found = json.loads(stamp.read_text())
    for text in (
        json.dumps(found | {"images_per_class": 10**9}),
        json.dumps(found | {"task": "bogus", "classes": ["x\n::error::forged"]}),
        "[]",
        "[" * 100_000,
        json.dumps(found | {"pad": "x" * MAX_STAMP_BYTES}),
    ):
        stamp.write_text(text)
        began = time.monotonic()
        read, lines = _data(project, 6)
        assert time.monotonic() - began < 60 and read == 18
        [warning] = _warnings(lines)
        assert "\n" not in warning and "::error" not in warning.split("(", 1)[0]
        assert sorted(p.name for p in project.iterdir() if p.name.startswith(".data")) in (
            [],
            [".data.lock"],
        )
