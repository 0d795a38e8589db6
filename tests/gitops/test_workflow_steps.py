"""The `run:` scripts of pipeline.yml and promote.yml, executed as their jobs would run them.

No forge here, so each job is a fresh clone; artifact upload and download are copies that
follow the workflow's `path:` patterns. This checks the jobs fit together: the plan's
matrices, the run folder travelling from search-train to every compile-bench job, the report
job putting the targets back together, gating, publishing, and promotion's tags.
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


def run_step(step: dict, cwd: Path, env: dict[str, str]) -> None:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", step["run"]], cwd=cwd,
                            capture_output=True, text=True,
                            env=os.environ | {"PATH": path} | env)
    assert result.returncode == 0, f"{step.get('name')}: {result.stdout}\n{result.stderr}"


def upload(step: dict, cwd: Path, store: Path, env: dict[str, str]) -> None:
    """actions/upload-artifact: files matching `path:`, relative to their common folder."""
    patterns = [line.strip() for line in step["with"]["path"].splitlines() if line.strip()]
    patterns = [p.replace("${{ matrix.project }}", env["PROJECT"])
                .replace("${{ matrix.target }}", env.get("TARGET", "")) for p in patterns]
    name = step["with"]["name"].replace("${{ matrix.project }}", env["PROJECT"]) \
        .replace("${{ matrix.target }}", env.get("TARGET", ""))
    files = [Path(f) for p in patterns for f in glob.glob(str(cwd / p), recursive=True)]
    files = [f for f in files if f.exists()]
    assert files, f"upload {name}: nothing matches {patterns}"
    root = Path(os.path.commonpath([str(f if f.is_dir() else f.parent) for f in files]))
    for found in files:
        if found.is_dir():
            shutil.copytree(found, store / name / found.relative_to(root), dirs_exist_ok=True)
        else:
            (store / name / found.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(found, store / name / found.relative_to(root))


def clone(origin: Path, where: Path, rev: str) -> Path:
    git(where.parent, "clone", "-q", str(origin), str(where))
    git(where, "checkout", "-q", rev)
    return where


def test_pipeline_and_promote_jobs_fit_together(tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    dev = tmp_path / "dev"
    git(tmp_path, "clone", "-q", str(origin), str(dev))
    for folder in ("runners", "schemas"):
        shutil.copytree(REPO / folder, dev / folder)
    shutil.copy2(REPO / ".gitignore", dev / ".gitignore")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=dev, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "remote", "add", "-d", "shared",
                    str(tmp_path / "dvc-remote")], cwd=dev, check=True)  # a shared remote
    git(dev, "add", "-A")
    git(dev, *IDENTITY, "commit", "-qm", "template")
    git(dev, "push", "-q", "origin", "main")
    base = git(dev, "rev-parse", "HEAD").strip()
    git(dev, "checkout", "-qb", "add-tiny")
    (dev / "projects" / "tiny").mkdir(parents=True)
    (dev / "projects" / "tiny" / "project.yaml").write_text(
        TINY.format(per_class=8, trials=1, search_epochs=1, epochs=1, latency=1000,
                    extra_targets=INT8_TARGET).replace("  patience: 50\n",
                                                       "  patience: 50\n  runner: local-cpu\n"))
    git(dev, "add", "-A")
    git(dev, *IDENTITY, "commit", "-qm", "tiny")
    git(dev, "push", "-q", "origin", "add-tiny")
    head = git(dev, "rev-parse", "HEAD").strip()
    store = tmp_path / "artifacts"

    # plan
    planner = clone(origin, tmp_path / "plan", head)
    output = tmp_path / "github_output"
    run_step(steps("pipeline.yml", "plan")["Plan"], planner,
             {"BASE": base, "PROJECT": "", "GITHUB_OUTPUT": str(output)})
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    projects = json.loads(outputs["projects"])["include"]
    targets = json.loads(outputs["targets"])["include"]
    assert [p["project"] for p in projects] == ["tiny"]
    assert [t["target"] for t in targets] == ["cpu-fp32", "cpu-int8"]

    # search-train, one job per project
    job = steps("pipeline.yml", "search-train")
    for entry in projects:
        work = clone(origin, tmp_path / f"st-{entry['project']}", head)
        env = {"PROJECT_PATH": entry["path"], "PROJECT": entry["project"]}
        run_step(job["Data, search, train, export"], work, env)
        upload(next(s for n, s in job.items() if "upload-artifact" in n), work, store, env)

    # compile-bench, one job per target, each on its own copy of the run
    job = steps("pipeline.yml", "compile-bench")
    for entry in targets:
        work = clone(origin, tmp_path / f"cb-{entry['target']}", head)
        shutil.copytree(store / f"run-{entry['project']}", work / "runs" / entry["project"])
        env = {"PROJECT_PATH": entry["path"], "PROJECT": entry["project"],
               "TARGET": entry["target"], "RUNNER_FILE": f"runners/{entry['runner']}.yaml"}
        run_step(job["Check the runner"], work, env)
        run_step(job["Compile and measure"], work, env)
        upload(next(s for n, s in job.items() if "upload-artifact" in n), work, store, env)

    # report: every artifact downloaded under parts/, gate, report, publish, push
    job = steps("pipeline.yml", "report")
    work = clone(origin, tmp_path / "report", head)
    shutil.copytree(store, work / "parts")
    github_env = tmp_path / "github_env"
    env = {"TARGETS": outputs["targets"], "PROJECTS": outputs["projects"], "HEAD_SHA": head,
           "GITHUB_ENV": str(github_env)}
    run_step(job["Gate and report"], work, env)
    assert "GATE_STATUS=0" in github_env.read_text()
    report = (work / "pr-report.md").read_text()
    assert "cpu-fp32" in report and "cpu-int8" in report
    run_step(job["Push the reports"], work, {"GITHUB_TOKEN": "unused-by-a-local-origin"})
    results = json.loads(git(work, "show", "origin/reports/tiny:results.json"))
    assert results["source_commit"] == head
    assert sorted(results["targets"]) == ["cpu-fp32", "cpu-int8"]
    assert all(t["artifact"]["md5"].endswith(".dir") for t in results["targets"].values())

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
    assert tags == {"tiny-cpu-fp32@v1.0.0", "tiny-cpu-fp32#prod#1",
                    "tiny-cpu-int8@v1.0.0", "tiny-cpu-int8#prod#1"}
    pulled = subprocess.run([sys.executable, "-m", "tango_ci", "pull", "tiny-cpu-int8#prod",
                             "--to", str(tmp_path / "device")], cwd=work, capture_output=True,
                            text=True)
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads((tmp_path / "device" / "artifact.json").read_text())["precision"] == "int8"
