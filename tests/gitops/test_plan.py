"""`tango ci plan` on a real repository: spec, data pointer, runner file and unrelated changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MINIMAL_PROJECT, git, write_project

PI_PROJECT = MINIMAL_PROJECT.replace("name: demo", "name: pi").replace(
    "runner: local-cpu", "runner: raspberry-pi-5"
)


@pytest.fixture
def repo(spec_repo: Path) -> Path:
    write_project(spec_repo, "demo")
    write_project(spec_repo, "pi", PI_PROJECT)
    (spec_repo / "README.md").write_text("hello\n")
    git(spec_repo, "add", "-A")
    git(spec_repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    return spec_repo


def commit(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD").strip()


def plan(root: Path, base: str, tmp_path: Path) -> tuple[dict, str]:
    output = tmp_path / "github_output"
    output.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "tango_ci", "ci", "plan", "--base", base, "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        env=dict(os.environ, GITHUB_OUTPUT=str(output)),
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), output.read_text()


def planned(result: dict) -> set[str]:
    return {p["project"] for p in result["projects"]}


def test_each_kind_of_change_plans_the_right_projects(repo: Path, tmp_path: Path) -> None:
    base = git(repo, "rev-parse", "HEAD").strip()

    spec = repo / "projects" / "demo" / "project.yaml"
    spec.write_text(spec.read_text().replace("images_per_class: 10", "images_per_class: 11"))
    after_spec = commit(repo, "spec")
    result, output = plan(repo, base, tmp_path)
    assert planned(result) == {"demo"}
    assert result["reasons"]["demo"] == ["projects/demo/project.yaml changed"]
    lines = dict(line.split("=", 1) for line in output.splitlines())
    assert lines["any"] == "true"
    assert json.loads(lines["targets"]) == {
        "include": [
            {
                "project": "demo",
                "path": "projects/demo",
                "target": "cpu",
                "runner": "local-cpu",
                "runs-on": ["ubuntu-latest"],
            }
        ]
    }
    assert json.loads(lines["projects"])["include"][0]["runs-on"] == [
        "self-hosted",
        "linux",
        "x64",
        "gpu",
    ]  # train.runner defaults to gpu-server

    (repo / "projects" / "pi" / "data.dvc").write_text("outs:\n- md5: 0123.dir\n  path: data\n")
    after_pointer = commit(repo, "data pointer")
    result, _ = plan(repo, after_spec, tmp_path)
    assert planned(result) == {"pi"}
    assert result["reasons"]["pi"] == ["data pointer projects/pi/data.dvc changed"]

    runner = repo / "runners" / "raspberry-pi-5.yaml"
    runner.write_text(runner.read_text() + "\n# re-measured\n")
    after_runner = commit(repo, "runner")
    result, _ = plan(repo, after_pointer, tmp_path)
    assert planned(result) == {"pi"}  # demo does not use that runner
    assert result["targets"][0]["runs-on"] == ["self-hosted", "linux", "arm64", "raspberry-pi-5"]

    (repo / "README.md").write_text("changed\n")
    (repo / "projects" / "demo" / "NOTES.md").write_text("notes\n")
    commit(repo, "unrelated")
    result, output = plan(repo, after_runner, tmp_path)
    assert planned(result) == set()
    assert "any=false" in output

    result, _ = plan(repo, base, tmp_path)  # the whole branch at once
    assert planned(result) == {"demo", "pi"}


def test_all_and_named_projects(repo: Path) -> None:
    from tango_ci.exceptions import TangoError
    from tango_ci.gitops.plan import make_plan

    assert {p["project"] for p in make_plan(repo, None, everything=True).projects} == {"demo", "pi"}
    assert [p["project"] for p in make_plan(repo, None, only=("pi",)).projects] == ["pi"]
    with pytest.raises(TangoError, match="no project named nope; projects: demo, pi"):
        make_plan(repo, None, only=("nope",))


def test_plan_without_what_to_plan_is_a_usage_error(repo: Path) -> None:
    """Nothing to compare or name is a mistake in the command line: exit 2, as click's."""
    result = subprocess.run(
        [sys.executable, "-m", "tango_ci", "ci", "plan"], cwd=repo, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "give --base REV, --all or --project NAME" in result.stderr
