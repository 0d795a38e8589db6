"""Run folders: what a killed fork leaves behind is cleaned up by a later fork."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tango_ci.pipeline import STALE_PARTIAL_S, remove_stale_partials
from tango_ci.rundir import RunDir, fork_run, write_json


def test_a_fork_removes_the_copies_killed_forks_left_a_day_ago(tmp_path: Path) -> None:
    """A fork killed mid-copy leaves `.<id>.partial` (never a run); they piled up for ever."""
    project_runs = tmp_path / "runs" / "tiny"
    run = project_runs / "20261129-000000-abcd"
    (run / "data").mkdir(parents=True)
    write_json(run / "spec.json", {"sha256": "0" * 64})
    old, recent = project_runs / ".20261127-000000-0001.partial", project_runs / ".x.partial"
    for folder in (old, recent):
        (folder / "data").mkdir(parents=True)
    stale = time.time() - STALE_PARTIAL_S - 60
    os.utime(old, (stale, stale))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.utime(elsewhere, (stale, stale))
    (project_runs / ".link.partial").symlink_to(elsewhere, target_is_directory=True)

    remove_stale_partials(project_runs)  # what open_run does before it forks
    forked = fork_run(RunDir(run), ["data"])

    assert (forked.root / "data").is_dir() and forked.root.parent == project_runs
    assert not old.exists()
    assert recent.is_dir()  # perhaps a fork at work right now
    assert elsewhere.is_dir()  # a link is not followed
