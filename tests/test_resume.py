"""A search and a training killed part way resume without losing finished work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tango_ci import api
from tango_ci.rundir import read_json
from tests.pipeline_helpers import make_repo

pytestmark = pytest.mark.slow
TRIALS = 6


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "TANGO_SEARCH_HEARTBEAT_S": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tango_ci", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if process.poll() is not None:
            pytest.fail(f"finished before it could be killed: {process.stderr.read()[-2000:]}")
        time.sleep(0.05)
    process.kill()
    pytest.fail("timed out waiting")


def _finished_count(db: Path) -> int:
    """Finished trials, read straight from the study's SQLite file: quick and never waiting on
    the search's write lock (loading the study through Optuna while the search writes can take
    longer than several tiny trials, and the kill then comes after the last one)."""
    import sqlite3

    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.05) as connection:
            (count,) = connection.execute(
                "SELECT COUNT(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED', 'FAIL')"
            ).fetchone()
        return int(count)
    except sqlite3.Error:  # being created or written right now
        return 0


def _finished_trials(db: Path) -> list[tuple]:
    import optuna

    if not db.exists():
        return []
    try:
        summaries = optuna.get_all_study_summaries(f"sqlite:///{db}")
        if not summaries:
            return []
        study = optuna.load_study(study_name=summaries[0].study_name, storage=f"sqlite:///{db}")
        return [
            (t.number, t.state.name, tuple(sorted(t.params.items())))
            for t in study.trials
            if t.state.is_finished()
        ]
    except Exception:  # the database may be mid-creation
        return []


def test_killed_search_and_training_resume(tmp_path: Path) -> None:
    project = make_repo(
        tmp_path / "repo", per_class=20, trials=TRIALS, search_epochs=2, epochs=30, extra_targets=""
    )
    root = project.parent.parent
    api.run(project, until="data")
    run = (root / "runs" / "tiny" / "latest").resolve()
    db = run / "search" / "study.db"

    search = _start(["search", "projects/tiny"], root)
    _wait_for(lambda: _finished_count(db) >= 1, search)
    search.send_signal(signal.SIGKILL)
    search.wait()
    before = _finished_trials(db)
    assert 1 <= len(before) < TRIALS
    time.sleep(2.5)  # let the killed trial's heartbeat go stale (grace period 2 s)

    resumed = _start(["search", "projects/tiny"], root)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert f"resuming search: {len(before)} trial(s) already finished" in err
    after = _finished_trials(db)
    assert after[: len(before)] == before  # nothing finished was lost or redone
    trials = read_json(run / "search" / "trials.json")
    assert sum(t["state"] in ("COMPLETE", "PRUNED") for t in trials) == TRIALS
    assert (run / "search" / "manifest.json").exists()  # same run: resumed, not forked

    last = run / "train" / "checkpoints" / "last.pt"

    def epochs_done() -> int:
        try:
            return torch.load(last, weights_only=False)["epoch"] + 1 if last.exists() else 0
        except Exception:  # being replaced right now
            return 0

    train = _start(["train", "projects/tiny"], root)
    _wait_for(lambda: epochs_done() >= 2, train)
    train.send_signal(signal.SIGKILL)
    train.wait()
    checkpoint = torch.load(last, weights_only=False)
    kept = checkpoint["history"]
    assert 2 <= len(kept) < 30

    resumed = _start(["train", "projects/tiny"], root)
    _out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert f"resumed training at epoch {len(kept) + 1}" in err
    history = read_json(run / "train" / "history.json")
    assert [h["epoch"] for h in history] == list(range(30))
    assert history[: len(kept)] == kept  # finished epochs kept exactly
    assert read_json(run / "train" / "metrics.json")["resumed_from_epoch"] == len(kept)


def test_ctrl_c_is_one_line_saying_how_to_go_on(tmp_path: Path) -> None:
    """Ctrl-C in a search: no traceback (Optuna logged one for the interrupted trial), exit
    code 130, and the command that continues the run."""
    project = make_repo(tmp_path / "repo", per_class=20, trials=4, search_epochs=50)
    root = project.parent.parent
    api.run(project, until="data")
    db = (root / "runs" / "tiny" / "latest").resolve() / "search" / "study.db"
    search = _start(["search", "projects/tiny"], root)
    _wait_for(db.exists, search)
    time.sleep(1)  # into the first trial's training
    search.send_signal(signal.SIGINT)
    _out, err = search.communicate(timeout=120)
    assert search.returncode == 130 and "Traceback" not in err, err
    assert err.rstrip().splitlines()[-1] == (
        "interrupted: finished stages, trials and checkpoints are kept; continue with: tango "
        "run projects/tiny --resume"
    )
