"""Promotion finds the report of what this push merged, not an older or unmerged one."""

from __future__ import annotations

import json
from pathlib import Path

from tango_ci.gitops.reports import find_report
from tango_ci.gitrepo import commit_files
from tests.conftest import git

ID = ["-c", "user.name=t", "-c", "user.email=t@t"]


def commit(root: Path, branch: str, name: str) -> str:
    git(root, "checkout", "-q", branch)
    (root / name).write_text(name)
    git(root, "add", "-A")
    git(root, *ID, "commit", "-qm", name)
    return git(root, "rev-parse", "HEAD").strip()


def report(root: Path, source: str, run: str) -> str:
    results = {
        "project": "p",
        "path": "projects/p",
        "run": run,
        "source_commit": source,
        "task": "classification",
        "architecture": "resnet-xs",
        "passed": True,
        "targets": {},
    }
    return commit_files(root, "reports/p", {"results.json": json.dumps(results).encode()}, run)


def test_the_report_of_the_merged_branch_is_found(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, *ID, "commit", "-q", "--allow-empty", "-m", "base")
    git(root, "branch", "a")
    git(root, "branch", "b")
    git(root, "branch", "c")
    a, b, c = commit(root, "a", "a"), commit(root, "b", "b"), commit(root, "c", "c")
    report(root, a, "run-a")
    report(root, b, "run-b")  # never merged
    report(root, c, "run-c")  # newest, merged first
    git(root, "checkout", "-q", "main")
    before_c = git(root, "rev-parse", "HEAD").strip()
    git(root, *ID, "merge", "-q", "--no-ff", "c", "-m", "merge c")
    after_c = git(root, "rev-parse", "HEAD").strip()
    git(root, *ID, "merge", "-q", "--no-ff", "a", "-m", "merge a")
    after_a = git(root, "rev-parse", "HEAD").strip()

    assert find_report(root, "p", after_c, before_c)[1]["run"] == "run-c"
    assert find_report(root, "p", after_a, after_c)[1]["run"] == "run-a"  # c's is older news
    assert find_report(root, "p", after_a, after_a) is None  # nothing new in an empty push
