"""`tango validate PATH` checks a project against its own repository's runner files, whichever
folder tango is run from."""

from __future__ import annotations

from pathlib import Path

import pytest

from tango_ci import api
from tests.pipeline_helpers import make_repo


def test_a_project_is_checked_against_its_own_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_repo(tmp_path / "repo")
    elsewhere = tmp_path / "elsewhere"  # above the repository, in no repository
    elsewhere.mkdir()
    monkeypatch.chdir(tmp_path)
    assert api.validate([project]) == []
    assert api.validate([project / "project.yaml"]) == []
    monkeypatch.chdir(elsewhere)
    assert api.validate([project]) == []
    # a real problem is still found, and named by the file of its own repository
    spec = project / "project.yaml"
    spec.write_text(spec.read_text().replace("runner: local-cpu", "runner: no-such-runner"))
    problems = api.validate([project])
    assert problems and all("no-such-runner" in p.format() for p in problems)
