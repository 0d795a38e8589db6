"""Promotion catches up: every merged report not registered yet, once, on real git and GTO."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tango_ci.dvcstore import push_dir
from tango_ci.gitops.promote import promote_pending
from tango_ci.gitrepo import commit_files
from tango_ci.registry import Registry
from tests.conftest import git

ID = ["-c", "user.name=t", "-c", "user.email=t@t"]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One real artifact in a real DVC remote, shared by the reports below."""
    root = tmp_path_factory.mktemp("artifact")
    (root / "artifact").mkdir()
    (root / "artifact" / "model.onnx").write_bytes(os.urandom(1024))
    return push_dir(root / "artifact", str(root / "dvc-remote"))


def dvc_remote(root: Path, url: str) -> str:
    """A committed .dvc/config whose default remote is ``url`` (promotion checks against it)."""
    text = f"[core]\n    remote = store\n['remote \"store\"']\n    url = {url}\n"
    return change(root, ".dvc/config", text, "the DVC remote")


@pytest.fixture
def repo(tmp_path: Path, stored: dict) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "t")
    git(root, "config", "user.email", "t@t")
    change(root, "README.md", "a fork of TANGO-CI\n", "template")
    dvc_remote(root, stored["remote"])
    return root


def change(root: Path, relative: str, text: str, message: str) -> str:
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    (root / relative).write_text(text)
    git(root, "add", "-A")
    git(root, *ID, "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD").strip()


def branch_with_project(root: Path, branch: str, project: str, text: str = "epochs: 1\n") -> str:
    git(root, "checkout", "-qb", branch, "main")
    source = change(
        root, f"projects/{project}/project.yaml", f"name: {project}\n{text}", f"{branch}: {project}"
    )
    git(root, "checkout", "-q", "main")
    return source


def report(
    root: Path, project: str, source: str, run: str, stored: dict, *, passed: bool = True
) -> str:
    results = {
        "project": project,
        "path": f"projects/{project}",
        "run": run,
        "source_commit": source,
        "task": "classification",
        "classes": ["a", "b"],
        "architecture": "resnet-xs",
        "passed": passed,
        "targets": {
            "cpu": {
                "passed": passed,
                "engine": "onnxruntime",
                "precision": "fp32",
                "runner": "local-cpu",
                "metrics": {"accuracy": 0.9, "p95_ms": 1.0},
                "failed": [] if passed else ["accuracy"],
                "artifact": stored,
            }
        },
    }
    return commit_files(
        root, f"reports/{project}", {"results.json": json.dumps(results).encode()}, f"report {run}"
    )


def merge(root: Path, branch: str) -> str:
    git(root, *ID, "merge", "-q", "--no-ff", branch, "-m", f"merge {branch}")
    return git(root, "rev-parse", "HEAD").strip()


def promoted(outcome: list[dict]) -> dict[str, list[str]]:
    return {
        entry["project"]: [item.get("version", "skipped") for item in entry["promoted"]]
        for entry in outcome
    }


def test_every_merged_report_is_promoted_once(repo: Path, stored: dict) -> None:
    for project in ("a", "b"):
        report(repo, project, branch_with_project(repo, project, project), f"run-{project}", stored)
        merge(repo, project)

    first = promote_pending(repo, "main", push=False)
    assert promoted(first) == {"a": ["v1.0.0"], "b": ["v1.0.0"]}
    registry = Registry(repo)
    head = git(repo, "rev-parse", "main").strip()
    assert registry.stage_version("a-cpu", "prod") == "v1.0.0"
    assert git(repo, "rev-list", "-n1", "a-cpu@v1.0.0").strip() == head
    assert registry.resolve("b-cpu#prod")["record"]["run"] == "run-b"
    tags = set(git(repo, "tag", "--list").split())

    assert promote_pending(repo, "main", push=False) == []  # idempotent
    assert set(git(repo, "tag", "--list").split()) == tags


def test_a_failed_promotion_is_made_by_the_next_push(repo: Path, stored: dict) -> None:
    report(repo, "a", branch_with_project(repo, "add-a", "a"), "run-a", stored)
    merged = merge(repo, "add-a")  # ... and the promotion job of this push failed
    head = change(repo, "README.md", "more words\n", "docs only")

    outcome = promote_pending(repo, head, base=merged, push=False)
    assert promoted(outcome) == {"a": ["v1.0.0"]}
    assert outcome[0]["run"] == "run-a"


def test_only_the_newest_merged_report_of_a_project_counts(repo: Path, stored: dict) -> None:
    report(repo, "a", branch_with_project(repo, "one", "a", "epochs: 1\n"), "run-1", stored)
    merge(repo, "one")
    git(repo, "checkout", "-qb", "two", "main")
    source = change(repo, "projects/a/project.yaml", "name: a\nepochs: 2\n", "longer")
    git(repo, "checkout", "-q", "main")
    report(repo, "a", source, "run-2", stored)
    merge(repo, "two")

    assert promoted(promote_pending(repo, "main", push=False)) == {"a": ["v1.0.0"]}
    assert Registry(repo).resolve("a-cpu#prod")["record"]["run"] == "run-2"
    assert promote_pending(repo, "main", push=False) == []


def test_an_unmerged_or_out_of_date_report_is_not_promoted(repo: Path, stored: dict) -> None:
    report(repo, "a", branch_with_project(repo, "add-a", "a"), "run-a", stored)
    merge(repo, "add-a")
    # a branch that never merged, with the same project folder as main
    git(repo, "checkout", "-qb", "runner-tweak", "main")
    tweak = change(repo, "runners/local-cpu.yaml", "threads: 1\n", "a runner change")
    git(repo, "checkout", "-q", "main")
    report(repo, "a", tweak, "run-unmerged", stored)
    # and main changed the project after the merged report was made
    change(repo, "projects/a/project.yaml", "name: a\nepochs: 9\n", "edited on main")

    assert promote_pending(repo, "main", push=False) == []
    assert git(repo, "tag", "--list").strip() == ""


def test_a_squash_merged_report_is_promoted(repo: Path, stored: dict) -> None:
    source = branch_with_project(repo, "add-a", "a")
    report(repo, "a", source, "run-a", stored)
    git(repo, "merge", "-q", "--squash", "add-a")
    git(repo, *ID, "commit", "-qm", "Add a (#1)")
    assert promoted(promote_pending(repo, "main", push=False)) == {"a": ["v1.0.0"]}


def test_a_failed_gate_is_told_for_this_push_only(repo: Path, stored: dict) -> None:
    before = git(repo, "rev-parse", "main").strip()
    report(repo, "a", branch_with_project(repo, "add-a", "a"), "run-a", stored, passed=False)
    head = merge(repo, "add-a")
    outcome = promote_pending(repo, head, base=before, push=False)
    assert outcome == [
        {
            "project": "a",
            "report": outcome[0]["report"],
            "run": "run-a",
            "passed": False,
            "promoted": [{"name": "a-cpu", "skipped": "gate failed"}],
        }
    ]
    assert promote_pending(repo, head, base=head, push=False) == []


def test_tango_ci_promote_twice(repo: Path, stored: dict) -> None:
    before = git(repo, "rev-parse", "main").strip()
    report(repo, "a", branch_with_project(repo, "add-a", "a"), "run-a", stored)
    merge(repo, "add-a")
    command = [sys.executable, "-m", "tango_ci", "ci", "promote", "--base", before, "--no-push"]
    first = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "a-cpu: v1.0.0 (first version) -> prod" in first.stderr
    second = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert "nothing to promote: every merged report is registered already" in second.stderr


def test_a_report_of_another_version_of_the_project_is_told_not_registered(
    repo: Path, stored: dict
) -> None:
    """A report made from a commit without the project as main has it never counts; `tango
    ci promote` says so instead of "every merged report is registered already"."""
    before = git(repo, "rev-parse", "main").strip()  # no projects/a here
    report(repo, "a", before, "run-early", stored)
    branch_with_project(repo, "add-a", "a")
    merge(repo, "add-a")
    command = [sys.executable, "-m", "tango_ci", "ci", "promote", "--no-push"]
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "registered already" not in result.stderr
    assert "nothing to promote" in result.stderr
    assert (
        f"a: no report counts as merged; the newest (run run-early) does not: it was made "
        f"from commit {before[:10]}, where projects/a is not as HEAD has it" in result.stderr
    )
    assert "a-cpu" not in Registry(repo).names()
