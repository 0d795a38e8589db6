"""Runs that fail or are killed part way: nothing finished is lost, and ``latest`` stays useful.

Every command runs in its own process (``tango`` from the hostile conftest, or a killed
``Popen``), on a tiny project.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hostile.conftest import refused, tango
from tests.pipeline_helpers import make_repo

pytestmark = pytest.mark.slow  # several fresh `tango` processes each


def _latest(root: Path) -> str | None:
    link = root / "runs" / "tiny" / "latest"
    return os.readlink(link) if link.is_symlink() else None


def _runs(root: Path) -> list[str]:
    folder = root / "runs" / "tiny"
    return sorted(p.name for p in folder.iterdir() if p.name != "latest" and p.name[0] != ".")


def _break_images(project: Path) -> None:
    for image in (project / "data").glob("*/*.png"):
        image.write_text("not an image")


def test_a_run_whose_first_stage_fails_hands_latest_back(tmp_path: Path) -> None:
    """`tango report` (and every stage without --run) picked the new run whose data stage had
    failed, and asked for a gate decision that no command could then make."""
    project = make_repo(tmp_path / "repo", per_class=4, trials=1, epochs=1, extra_targets="")
    root = project.parent.parent
    assert tango("run", "projects/tiny", "--until", "data", cwd=root).code == 0
    good = _latest(root)
    assert good is not None
    _break_images(project)
    failed = tango("run", "projects/tiny", cwd=root)
    assert failed.code == 1 and "images cannot be read" in failed.error_line
    runs = _runs(root)
    assert len(runs) == 2  # the failed run is kept, for looking into
    bad = next(name for name in runs if name != good)
    assert f"run {bad} made nothing; latest points at run {good} again" in failed.stderr
    assert _latest(root) == good
    # and the next stage (here the gate) is asked of the last good run, not of the failed one
    result = tango("gate", "projects/tiny", cwd=root)
    assert result.code == 1 and f"runs/tiny/{good})" in result.error_line


def test_a_first_run_that_fails_leaves_no_latest(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "repo", per_class=4, trials=1, epochs=1, extra_targets="")
    root = project.parent.parent
    assert tango("data", "prepare", "projects/tiny", cwd=root).code == 0  # synthesises data/
    (root / "runs").rename(tmp_path / "old-runs")
    _break_images(project)
    assert tango("run", "projects/tiny", cwd=root).code == 1
    assert len(_runs(root)) == 1 and _latest(root) is None
    refused(
        tango("report", "projects/tiny", cwd=root),
        "project tiny has no run yet; start one with `tango run projects/tiny`",
    )


def test_a_run_killed_in_its_first_stage_stays_latest_and_resumes(tmp_path: Path) -> None:
    """Only a failure hands ``latest`` back: a killed run is the one ``--resume`` continues."""
    project = make_repo(tmp_path / "repo", per_class=4, trials=1, epochs=1, extra_targets="")
    root = project.parent.parent
    assert tango("run", "projects/tiny", "--until", "data", cwd=root).code == 0
    good = _latest(root)
    run = subprocess.Popen(
        [sys.executable, "-m", "tango_ci", "run", "projects/tiny", "--until", "data"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while _latest(root) == good and time.time() < deadline and run.poll() is None:
        time.sleep(0.01)
    run.send_signal(signal.SIGKILL)
    run.wait()
    killed = _latest(root)
    assert killed not in (None, good)
    assert tango("run", "projects/tiny", "--until", "data", "--resume", cwd=root).code == 0
    assert _latest(root) == killed
    assert (root / "runs" / "tiny" / killed / "data" / "manifest.json").is_file()


def test_a_fork_killed_while_copying_leaves_no_half_run(tmp_path: Path) -> None:
    """`tango search` on a run whose search is complete copies the earlier stages into a new
    run; killed part way, the half copy was a run folder (complete manifests, files missing)."""
    project = make_repo(tmp_path / "repo", per_class=4, trials=1, epochs=1, extra_targets="")
    root = project.parent.parent
    assert tango("run", "projects/tiny", "--until", "search", cwd=root).code == 0
    good = _latest(root)
    assert good is not None
    many = root / "runs" / "tiny" / good / "data" / "many"  # a long copy, to be killed in
    many.mkdir()
    for index in range(30000):
        (many / f"{index}.txt").write_text("x")
    fork = subprocess.Popen(
        [sys.executable, "-m", "tango_ci", "search", "projects/tiny"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    folder = root / "runs" / "tiny"
    deadline = time.time() + 120
    while len(os.listdir(folder)) < 3 and time.time() < deadline and fork.poll() is None:
        time.sleep(0.005)
    time.sleep(0.2)
    fork.send_signal(signal.SIGKILL)
    fork.wait()
    assert _latest(root) == good
    assert _runs(root) == [good]  # no half-copied run beside the good one
    # (the kill did come mid-copy: the unfinished copy is left under a name that is no run id)
    assert any(p.name.endswith(".partial") for p in folder.iterdir())
    refused(
        tango("gate", "projects/tiny", "--run", "nope", cwd=root),
        f"no run 'nope' of project tiny; runs: {good}",
    )
