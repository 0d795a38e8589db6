"""The `run:` scripts of profile.yml, executed as its jobs would run them.

Each job is a fresh clone of a temporary origin's default branch; `${{ ... }}` values of the
jobs' and steps' `env:` come from a dispatch's inputs (a tiny sample, so that this machine
profiles it in well under a minute); artifact upload and download are copies that follow the
workflow's `name:`, `path:` and `pattern:`. `gh`, which needs GitHub, is a stand-in that
records its calls (as `cml` is in test_workflow_steps.py). This checks that the jobs fit
together: the runners' labels and the plan, the profile on the device, and the pull-request
branch that `tango validate` accepts, and refuses once its model file is corrupted.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, git
from tests.gitops.test_workflow_steps import (
    IDENTITY,
    clone,
    outputs,
    push_branch,
    run_step,
    template,
    upload,
)

WORKFLOW = yaml.safe_load((REPO / ".github" / "workflows" / "profile.yml").read_text())
RUNNER = "local-cpu"
RUN_ID = "4242"
BRANCH = f"profile/{RUNNER}-{RUN_ID}"
MODEL = f"runners/{RUNNER}/latency/onnxruntime-fp32.json"
# a dispatch for local-cpu with a sample this machine times in well under a minute
INPUTS = {
    "runner": RUNNER,
    "engine": "onnxruntime",
    "precision": "fp32",
    "networks": "20",
    "blocks": "4",
    "time_budget": "",
    "yolo": "false",
    "resume": "false",
}
# what a schedule or a push gets for each input
NO_INPUTS = {f"inputs.{name}": "" for name in INPUTS}
# the variables a GitHub runner sets for every step
RUNNER_ENV = {
    "GITHUB_SERVER_URL": "https://github.example",
    "GITHUB_REPOSITORY": "owner/repo",
    "GITHUB_RUN_ID": RUN_ID,
}


def context(job: Path, **values: str) -> dict[str, str]:
    """The expression values of a dispatch for ``RUNNER`` (plus ``values``)."""
    return {
        **{f"inputs.{name}": value for name, value in INPUTS.items()},
        "github.event_name": "workflow_dispatch",
        "github.event.before": "",
        "github.sha": "",
        "github.run_id": RUN_ID,
        "github.event.repository.default_branch": "main",
        "matrix.runner": RUNNER,
        "secrets.GITHUB_TOKEN": "unused-by-a-local-origin",
        "runner.temp": str(job / "_temp"),
        **values,
    }


def expand(text: str, values: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1).strip()
        assert name in values, f"the test gives no value for ${{{{ {name} }}}}"
        return values[name]

    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


def step(job: str, name: str) -> dict:
    return next(s for s in WORKFLOW["jobs"][job]["steps"] if name in (s.get("name"), s.get("uses")))


def uses(job: str, action: str) -> dict:
    return next(
        s for s in WORKFLOW["jobs"][job]["steps"] if s.get("uses", "").startswith(action + "@")
    )


def run(job: str, name: str, work: Path, values: dict[str, str], **extra: str) -> None:
    """Run a step with the workflow's, the job's and the step's `env:` expanded."""
    scopes = (WORKFLOW.get("env"), WORKFLOW["jobs"][job].get("env"), step(job, name).get("env"))
    env = {k: expand(str(v), values) for scope in scopes for k, v in (scope or {}).items()}
    run_step(step(job, name), work, RUNNER_ENV | env | extra)


def download(job: str, store: Path, values: dict[str, str]) -> None:
    """actions/download-artifact by pattern: each match into `path:`/<artifact name>/."""
    options = uses(job, "actions/download-artifact")["with"]
    pattern, path = expand(options["pattern"], values), Path(expand(options["path"], values))
    for artifact in store.iterdir():
        if fnmatch.fnmatch(artifact.name, pattern):
            shutil.copytree(artifact, path / artifact.name)


def tango(where: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_ACTIONS"}
    return subprocess.run(
        [sys.executable, "-m", "tango_ci", *args],
        cwd=where,
        capture_output=True,
        text=True,
        env=env,
    )


def labels_and_plan(origin: Path, job: Path, **values: str) -> dict[str, str]:
    """Jobs `runners` and `plan` on fresh clones; returns the plan's outputs."""
    clone(origin, job / "runners", "main")
    found = job / "runners" / "_temp" / "labels"
    run("runners", "Runner labels", job / "runners", context(job), GITHUB_OUTPUT=str(found))
    labels = outputs(found)["labels"]
    clone(origin, job / "plan", "main")
    planned = job / "plan" / "_temp" / "plan"
    run(
        "plan",
        "Runners to profile",
        job / "plan",
        context(job, **{"needs.runners.outputs.labels": labels, **values}),
        GITHUB_OUTPUT=str(planned),
    )
    return {"labels": labels, **outputs(planned)}


def planned_runners(found: dict[str, str]) -> list[str]:
    return [row["runner"] for row in json.loads(found["runners"])["include"]]


def test_the_plan_picks_the_asked_the_changed_or_every_runner(tmp_path: Path) -> None:
    origin, dev, base = template(tmp_path)
    every = sorted(p.stem for p in (REPO / "runners").glob("*.yaml"))

    found = labels_and_plan(origin, tmp_path / "dispatch")
    assert json.loads(found["labels"])[RUNNER] == ["ubuntu-latest"]
    assert planned_runners(found) == [RUNNER] and found["any"] == "true"

    found = labels_and_plan(
        origin, tmp_path / "schedule", **NO_INPUTS, **{"github.event_name": "schedule"}
    )
    assert sorted(planned_runners(found)) == every

    git(dev, "checkout", "-q", "main")
    text = (dev / "runners" / "raspberry-pi-5.yaml").read_text()
    head = push_branch(dev, "edit", {"runners/raspberry-pi-5.yaml": text + "# edited\n"})
    git(dev, "push", "-q", "origin", "edit:main")
    push = {"github.event_name": "push", "github.event.before": base, "github.sha": head}
    found = labels_and_plan(origin, tmp_path / "push", **NO_INPUTS, **push)
    assert planned_runners(found) == ["raspberry-pi-5"]

    # a push that changed no runner file (the workflow's paths filter aside) plans nothing
    found = labels_and_plan(
        origin, tmp_path / "none", **NO_INPUTS, **push | {"github.event.before": head}
    )
    assert planned_runners(found) == [] and found["any"] == "false"

    with pytest.raises(AssertionError, match="no valid runner file"):
        labels_and_plan(origin, tmp_path / "unknown", **{"inputs.runner": "no-such-device"})


@pytest.mark.slow
def test_a_profile_becomes_a_pull_request_that_tango_validate_checks(tmp_path: Path) -> None:
    origin, _, _ = template(tmp_path)
    store = tmp_path / "artifacts"
    assert planned_runners(labels_and_plan(origin, tmp_path / "plan")) == [RUNNER]

    # profile, on the device
    work = clone(origin, tmp_path / "profile", "main")
    values = context(work)
    run("profile", "Check the runner", work, values)
    run("profile", "Profile", work, values)
    artifact = uses("profile", "actions/upload-artifact")
    options = {
        k: expand(v, values) if isinstance(v, str) else v for k, v in artifact["with"].items()
    }
    upload({**artifact, "with": options}, work, store, {"PROJECT": RUNNER})
    profiled = {p.name for p in (store / f"latency_{RUNNER}").iterdir()}
    assert profiled == {
        "onnxruntime-fp32.json",
        "onnxruntime-fp32.measurements.jsonl",
        "onnxruntime-fp32.remeasured.jsonl",
        "onnxruntime-fp32.png",
        "report.md",
    }

    # pull-request: the default branch, the profile as downloaded data
    work = clone(origin, tmp_path / "pull-request", "main")
    values = context(work)
    download("pull-request", store, values)
    github_output = work / "_temp" / "commit"
    run("pull-request", "Commit the profile", work, values, GITHUB_OUTPUT=str(github_output))
    assert outputs(github_output)["changed"] == "true"
    run("pull-request", "Push the branch", work, values)
    calls, body = work / "_temp" / "gh-calls", work / "_temp" / "gh-body"
    fake = work / "_temp" / "bin" / "gh"
    fake.parent.mkdir(parents=True)
    fake.write_text(
        '#!/bin/sh\nprintf \'%s\\n\' "$*" >> "$CALLS"\n'
        'while [ $# -gt 0 ]; do [ "$1" = --body-file ] && cp "$2" "$BODY"; shift; done\n'
        "exit 0\n"
    )
    fake.chmod(0o755)
    path = f"{fake.parent}{os.pathsep}{os.environ['PATH']}"
    run(
        "pull-request",
        "Open the pull request",
        work,
        values,
        CALLS=str(calls),
        BODY=str(body),
        PATH=path,
    )
    listed, created = calls.read_text().splitlines()
    assert listed.startswith("pr list --repo owner/repo --head " + BRANCH)
    assert created.startswith(f"pr create --repo owner/repo --base main --head {BRANCH} ")
    text = body.read_text()
    assert f"runs/{RUN_ID}" in text and "# Latency models of runner `local-cpu`" in text
    plot = f"https://github.example/owner/repo/blob/{BRANCH}/runners/{RUNNER}/latency/"
    assert f"]({plot}onnxruntime-fp32.png?raw=true)" in text

    # the branch on the origin: one commit on main with the profile
    assert git(origin, "rev-list", "--count", f"main..{BRANCH}").strip() == "1"
    files = git(origin, "ls-tree", "-r", "--name-only", BRANCH, f"runners/{RUNNER}/latency")
    assert {Path(f).name for f in files.split()} == profiled

    check = clone(origin, tmp_path / "check", BRANCH)
    accepted = tango(check, "validate")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr

    # a corrupted model on the branch: one line that names it
    model = (check / MODEL).read_text()
    (check / MODEL).write_text(model[: len(model) // 2])
    git(check, *IDENTITY, "commit", "-qam", "corrupt")
    git(check, "push", "-q", "origin", BRANCH)
    refused = tango(clone(origin, tmp_path / "check-corrupt", BRANCH), "validate")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    lines = refused.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(MODEL), refused.stdout
