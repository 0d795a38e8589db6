"""The `run:` scripts of pipeline.yml and promote.yml, executed as their jobs would run them.

No forge here, so each job is a fresh workspace of clones (the default branch in trusted/, the
change in pr/); artifact upload and download are copies that follow the workflow's `path:`
patterns. This checks the jobs fit together: the plan's matrices and its problems, the runner
labels, the run folder travelling from search-train to every compile-bench job, gate-report
putting the targets back together, publishing from the default branch, the comment, and
promotion's tags.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, git
from tests.pipeline_helpers import INT8_TARGET, TINY

pytestmark = pytest.mark.slow
WORKFLOWS = REPO / ".github" / "workflows"
IDENTITY = ["-c", "user.name=dev", "-c", "user.email=dev@example.com"]


def steps(workflow: str, job: str) -> dict[str, dict]:
    jobs = yaml.safe_load((WORKFLOWS / workflow).read_text())["jobs"]
    return {s.get("name", s.get("uses", "")): s for s in jobs[job]["steps"]}


def run_step(step: dict, job: Path, env: dict[str, str]) -> None:
    """Run a step's script in its working-directory under the job's workspace ``job``."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', os.environ['PATH'])}"
    temp = job / "_temp"
    temp.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", step["run"]],
        cwd=job / step.get("working-directory", "."),
        capture_output=True,
        text=True,
        env=os.environ | {"RUNNER_TEMP": str(temp)} | env | {"PATH": path},
    )
    assert result.returncode == 0, f"{step.get('name')}: {result.stdout}\n{result.stderr}"


def _expand(text: str, job: Path, env: dict[str, str]) -> str:
    return (
        text.replace("${{ matrix.project }}", env["PROJECT"])
        .replace("${{ matrix.target }}", env.get("TARGET", ""))
        .replace("${{ runner.temp }}", str(job / "_temp"))
    )


def upload(step: dict, job: Path, store: Path, env: dict[str, str]) -> None:
    """actions/upload-artifact: files matching `path:`, relative to their common folder,
    without hidden files (include-hidden-files is off by default)."""
    patterns = [
        _expand(line.strip(), job, env)
        for line in step["with"]["path"].splitlines()
        if line.strip()
    ]
    name = _expand(step["with"]["name"], job, env)
    files = [Path(f) for p in patterns for f in glob.glob(str(job / p), recursive=True)]
    files = [f for f in files if f.exists()]
    assert files, f"upload {name}: nothing matches {patterns}"
    root = Path(os.path.commonpath([str(f if f.is_dir() else f.parent) for f in files]))
    for found in files:
        if found.is_dir():
            shutil.copytree(
                found,
                store / name / found.relative_to(root),
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns(".*"),
            )
        elif not found.name.startswith("."):
            (store / name / found.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(found, store / name / found.relative_to(root))


def clone(origin: Path, where: Path, rev: str) -> Path:
    where.parent.mkdir(parents=True, exist_ok=True)
    git(where.parent, "clone", "-q", str(origin), str(where))
    git(where, "checkout", "-q", rev)
    return where


def outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def workspace(origin: Path, job: Path, head: str) -> Path:
    """A job's workspace: the default branch in trusted/, the change in pr/."""
    clone(origin, job / "trusted", "main")
    clone(origin, job / "pr", head)
    return job


def template(tmp_path: Path) -> tuple[Path, Path, str]:
    """A bare origin whose main holds the template; returns (origin, dev clone, main's id)."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    dev = tmp_path / "dev"
    git(tmp_path, "clone", "-q", str(origin), str(dev))
    for folder in ("runners", "schemas"):
        shutil.copytree(REPO / folder, dev / folder)
    shutil.copy2(REPO / ".gitignore", dev / ".gitignore")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=dev, check=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dvc",
            "remote",
            "add",
            "-d",
            "shared",
            str(tmp_path / "dvc-remote"),
        ],
        cwd=dev,
        check=True,
    )  # a shared remote
    git(dev, "add", "-A")
    git(dev, *IDENTITY, "commit", "-qm", "template")
    git(dev, "push", "-q", "origin", "main")
    return origin, dev, git(dev, "rev-parse", "HEAD").strip()


def push_branch(dev: Path, branch: str, files: dict[str, str]) -> str:
    git(dev, "checkout", "-qb", branch)
    for name, text in files.items():
        (dev / name).parent.mkdir(parents=True, exist_ok=True)
        (dev / name).write_text(text)
    git(dev, "add", "-A")
    git(dev, *IDENTITY, "commit", "-qm", branch)
    git(dev, "push", "-q", "origin", branch)
    return git(dev, "rev-parse", "HEAD").strip()


def plan(origin: Path, job: Path, base: str, head: str) -> dict[str, str]:
    workspace(origin, job, head)
    output = job / "github_output"
    run_step(
        steps("pipeline.yml", "plan")["Plan"],
        job,
        {"BASE": base, "PROJECT": "", "GITHUB_OUTPUT": str(output)},
    )
    return outputs(output)


def test_one_broken_project_fails_only_its_own_job(tmp_path: Path) -> None:
    """The plan leaves out a broken project or runner file and a project whose device the
    default branch does not have, reporting each as a problem, and plans the rest; folder
    names are data (`projects/sp ace*` is one project)."""
    origin, dev, base = template(tmp_path)
    tiny = TINY.format(
        per_class=8, trials=1, search_epochs=1, epochs=1, latency=1000, extra_targets=""
    )
    device = (
        (REPO / "runners" / "local-cpu.yaml")
        .read_text()
        .replace("name: local-cpu", "name: new-device")
        .replace("[ubuntu-latest]", "[new-box]")
    )
    head = push_branch(
        dev,
        "many",
        {
            "projects/tiny/project.yaml": tiny,
            "projects/sp ace*/project.yaml": tiny.replace("name: tiny", "name: spaced"),
            "projects/broken/project.yaml": "name: broken\ntask: classification\n",
            "projects/newdev/project.yaml": tiny.replace("name: tiny", "name: newdev").replace(
                "runner: local-cpu", "runner: new-device"
            ),
            "runners/new-device.yaml": device,
            "runners/broken-device.yaml": "name: broken-device\nlabels: [x]\n",
        },
    )
    found = plan(origin, tmp_path / "plan", base, head)
    projects = json.loads(found["projects"])["include"]
    problems = json.loads(found["problems"])["include"]
    assert sorted(p["path"] for p in projects) == ["projects/sp ace*", "projects/tiny"]
    assert all("runs-on" not in p for p in projects + json.loads(found["targets"])["include"])
    assert sorted(p["project"] for p in problems) == [
        "broken",
        "newdev",
        "runners/broken-device.yaml",
    ]
    assert (
        "not on the default branch"
        in next(p for p in problems if p["project"] == "newdev")["problem"]
    )
    assert found["any"] == "true" and found["any-problems"] == "true"

    # the device jobs' runs-on: the default branch's labels, looked up by runner name
    job = tmp_path / "runners"
    clone(origin, job / "trusted", "main")
    run_step(
        steps("pipeline.yml", "runners")["Runner labels"],
        job,
        {"GITHUB_OUTPUT": str(job / "github_output")},
    )
    labels = json.loads(outputs(job / "github_output")["labels"])
    assert labels["local-cpu"] == ["ubuntu-latest"] and "new-device" not in labels


def test_pipeline_and_promote_jobs_fit_together(tmp_path: Path) -> None:
    origin, dev, base = template(tmp_path)
    head = push_branch(
        dev,
        "add-tiny",
        {
            "projects/tiny/project.yaml": TINY.format(
                per_class=8,
                trials=1,
                search_epochs=1,
                epochs=1,
                latency=1000,
                extra_targets=INT8_TARGET,
            ).replace("  patience: 50\n", "  patience: 50\n  runner: local-cpu\n")
        },
    )
    store = tmp_path / "artifacts"

    # plan
    planned = plan(origin, tmp_path / "plan", base, head)
    projects = json.loads(planned["projects"])["include"]
    targets = json.loads(planned["targets"])["include"]
    assert [p["project"] for p in projects] == ["tiny"]
    assert [t["target"] for t in targets] == ["cpu-fp32", "cpu-int8"]
    assert json.loads(planned["problems"])["include"] == []

    # search-train, one job per project
    job = steps("pipeline.yml", "search-train")
    for entry in projects:
        work = workspace(origin, tmp_path / f"st-{entry['project']}", head)
        env = {"PROJECT_PATH": entry["path"], "PROJECT": entry["project"]}
        run_step(job["Data, search, train, export"], work, env)
        upload(next(s for n, s in job.items() if "upload-artifact" in n), work, store, env)

    # compile-bench, one job per target, each on its own copy of the run
    job = steps("pipeline.yml", "compile-bench")
    for entry in targets:
        work = workspace(origin, tmp_path / f"cb-{entry['target']}", head)
        shutil.copytree(store / f"run_{entry['project']}", work / "pr" / "runs" / entry["project"])
        env = {
            "PROJECT_PATH": entry["path"],
            "PROJECT": entry["project"],
            "TARGET": entry["target"],
            "RUNNER": entry["runner"],
        }
        run_step(job["Check the runner"], work, env)
        run_step(job["Specialise, compile and measure"], work, env)
        upload(next(s for n, s in job.items() if "upload-artifact" in n), work, store, env)

    # gate-report, one job per project: the run and its targets' parts put back together
    job = steps("pipeline.yml", "gate-report")
    for entry in projects:
        work = workspace(origin, tmp_path / f"gr-{entry['project']}", head)
        shutil.copytree(store / f"run_{entry['project']}", work / "pr" / "runs" / entry["project"])
        for part in store.glob(f"bench_{entry['project']}_*"):
            shutil.copytree(part, work / "parts" / part.name)
        github_env = work / "github_env"
        env = {
            "PROJECT_PATH": entry["path"],
            "PROJECT": entry["project"],
            "TARGETS": planned["targets"],
            "PARTS": "../parts",
            "GITHUB_ENV": str(github_env),
        }
        run_step(job["Gate and report"], work, env)
        assert "GATE_STATUS=0" in github_env.read_text()
        upload(next(s for n, s in job.items() if "upload-artifact" in n), work, store, env)
    result = store / "result_tiny"
    assert (result / "projects" / "tiny" / "project.yaml").is_file()
    assert (result / "runners" / "local-cpu.yaml").is_file()

    # publish: the default branch only, the results as data outside its checkout
    job = steps("pipeline.yml", "publish")
    work = tmp_path / "publish"
    clone(origin, work / "trusted", "main")
    results = work / "_temp" / "results"
    shutil.copytree(store, results, ignore=shutil.ignore_patterns("run_*", "bench_*"))
    github_env = work / "github_env"
    run_step(
        job["Publish the reports"],
        work,
        {
            "PROJECTS": planned["projects"],
            "RESULTS": str(results),
            "HEAD_SHA": head,
            "GITHUB_ENV": str(github_env),
        },
    )
    assert "PUBLISH_STATUS=0" in github_env.read_text()
    run_step(job["Push the reports"], work, {"GITHUB_TOKEN": "unused-by-a-local-origin"})
    published = json.loads(git(origin, "show", "reports/tiny:results.json"))
    assert published["source_commit"] == head
    assert sorted(published["targets"]) == ["cpu-fp32", "cpu-int8"]
    assert all(t["artifact"]["md5"].endswith(".dir") for t in published["targets"].values())

    # comment: the plots uploaded without the token, the comment posted with no upload
    job = steps("pipeline.yml", "comment")
    work = tmp_path / "comment"
    calls = work / "cml-calls"
    fake = work / "bin" / "cml"
    fake.parent.mkdir(parents=True)
    fake.write_text(
        '#!/bin/sh\necho "$@" >> "$CALLS"\n'
        'if [ "$1" = asset ]; then echo "https://assets.example/$(basename "$3")"; fi\n'
    )
    fake.chmod(0o755)
    env = {
        "PROJECTS": planned["projects"],
        "RESULTS": str(results),
        "REPORT": str(work / "pr-report.md"),
        "CALLS": str(calls),
        "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}",
    }
    run_step(job["Upload the plots"], work, env)
    report = (work / "pr-report.md").read_text()
    assert "cpu-fp32" in report and "cpu-int8" in report
    assert "](https://assets.example/search.png)" in report and "](search.png)" not in report
    run_step(job["Comment on the pull request"], work, env | {"PR_NUMBER": "7"})
    comment = calls.read_text().splitlines()[-1]
    assert comment.startswith("comment update --target=pr/7 --no-publish")

    # promote.yml after the merge
    git(dev, "checkout", "-q", "main")
    git(dev, *IDENTITY, "merge", "-q", "--no-ff", "add-tiny", "-m", "merge")
    git(dev, "push", "-q", "origin", "main")
    job = steps("promote.yml", "promote")
    work = clone(origin, tmp_path / "promote", "main")
    run_step(job["Fetch the reports and the registry"], work, {"GITHUB_TOKEN": "x"})
    run_step(job["Register and promote"], work, {"BEFORE": base})
    run_step(job["Push the registry tags"], work, {"GITHUB_TOKEN": "x"})
    tags = set(git(origin, "tag", "--list").split())
    assert tags == {
        "tiny-cpu-fp32@v1.0.0",
        "tiny-cpu-fp32#prod#1",
        "tiny-cpu-int8@v1.0.0",
        "tiny-cpu-int8#prod#1",
    }
    pulled = subprocess.run(
        [
            sys.executable,
            "-m",
            "tango_ci",
            "pull",
            "tiny-cpu-int8#prod",
            "--to",
            str(tmp_path / "device"),
        ],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads((tmp_path / "device" / "artifact.json").read_text())["precision"] == "int8"
