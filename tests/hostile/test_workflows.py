"""The workflows keep pull-request code away from write tokens and self-hosted runner choice.

Static checks on the parsed YAML of .github/workflows. A pull request is untrusted: its
checkout is data, and any job that checks it out or installs it holds a read-only token.
Each check is a function from a workflow (as yaml.safe_load returns it) to a list of
findings, run on every real workflow and on bad snippets (among them the jobs of the
pipeline before the hostile review), so that each check is shown to be able to fail.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.hostile.workflow_checks import (
    CHECKS,
    _requirement_names,
    _scripts,
    check_checkouts_keep_no_credentials,
    check_no_expressions_in_scripts,
    check_no_word_splitting_loops,
    check_npm_installs_are_exact,
    check_pip_installs_are_pinned,
    check_pr_jobs_hold_no_write_token,
    check_runs_on_is_trusted,
    check_write_jobs_run_default_branch_only,
)
from tests.hostile.workflow_reading import (
    CONSTRAINTS,
    WORKFLOWS,
    Check,
    _checkouts,
    _jobs,
    _pip_installs,
    _runs_pr_code,
    _tainted_jobs,
    _writes,
    load,
)


# ----------------------------------------------------------------------------- the real ones
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes(workflow: Path, check: Check) -> None:
    assert check(load(workflow.read_text())) == []


def test_the_pipeline_has_the_jobs_the_checks_are_about() -> None:
    """Guards the checks against passing because there is nothing left to check."""
    pipeline = load((REPO / ".github" / "workflows" / "pipeline.yml").read_text())
    jobs = _jobs(pipeline)
    writers = [n for n, j in jobs.items() if _writes(pipeline, j)]
    assert sorted(writers) == ["comment", "publish"]
    pr_jobs = [n for n, j in jobs.items() if _runs_pr_code(pipeline, j)]
    assert {"plan", "search-train", "compile-bench", "gate-report"} <= set(pr_jobs)
    assert "runners" not in _tainted_jobs(pipeline)
    for device_job in ("search-train", "compile-bench"):
        assert "needs.runners.outputs" in jobs[device_job]["runs-on"]
        assert jobs[device_job]["strategy"]["fail-fast"] is False
    assert any(_pip_installs(s) for _, s in _scripts(pipeline))


def test_the_constraints_file_pins_every_package_the_workflows_name() -> None:
    pins = {}
    for line in (REPO / CONSTRAINTS).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version and re.fullmatch(r"[\w.+!-]+", version), line
            pins[re.sub(r"[-_.]+", "-", name.lower())] = version
    for path in WORKFLOWS:
        for _, script in _scripts(load(path.read_text())):
            for args in _pip_installs(script):
                for name in _requirement_names(args):
                    assert re.sub(r"[-_.]+", "-", name.lower()) in pins, (path.name, name)


# ----------------------------------------------------------------------------- bad snippets
# The report job of pipeline.yml before the hostile review (commit 1d56ebb), trimmed.
OLD_PIPELINE = """
on:
  pull_request:
permissions: {}
jobs:
  plan:
    runs-on: ubuntu-latest
    permissions: {contents: read}
    outputs:
      projects: ${{ steps.plan.outputs.projects }}
    steps:
      - uses: actions/checkout@0000000000000000000000000000000000000000
        with: {fetch-depth: 0, persist-credentials: false}
      - run: |
          python -m pip install --no-deps -e .
          python -m pip install jsonschema pyyaml typer rich numpy pillow psutil
      - id: plan
        run: tango ci plan --base "$BASE" --head HEAD
  search-train:
    needs: plan
    strategy:
      matrix: ${{ fromJSON(needs.plan.outputs.projects) }}
    runs-on: ${{ matrix.runs-on }}
    permissions: {contents: read}
    steps:
      - uses: actions/checkout@0000000000000000000000000000000000000000
        with: {persist-credentials: false}
      - run: python -m pip install -e .
  report:
    needs: [plan, search-train]
    runs-on: ubuntu-latest
    permissions:
      contents: write
      pull-requests: write
    steps:
      - uses: actions/checkout@0000000000000000000000000000000000000000
        with: {fetch-depth: 0, persist-credentials: false}
      - run: |
          python -m pip install -e .
          npm install --global @dvcorg/cml@0.20
      - uses: actions/download-artifact@0000000000000000000000000000000000000000
        with: {path: parts/}
      - run: |
          for row in $(python -c 'print("a:b")'); do
            tango gate "${row#*:}"
          done
      - env: {GITHUB_TOKEN: "${{ secrets.GITHUB_TOKEN }}"}
        run: git push origin "refs/heads/reports/*:refs/heads/reports/*"
"""


@pytest.mark.parametrize(
    "check",
    [
        check_pr_jobs_hold_no_write_token,
        check_write_jobs_run_default_branch_only,
        check_runs_on_is_trusted,
        check_no_word_splitting_loops,
        check_pip_installs_are_pinned,
        check_npm_installs_are_exact,
    ],
    ids=lambda c: c.__name__,
)
def test_each_check_flags_the_old_pipeline(check: Check) -> None:
    assert check(load(OLD_PIPELINE)), f"{check.__name__} accepts the old pipeline"


def _workflow(job: str, on: str = "pull_request") -> dict:
    return load(
        f"on: {on}\njobs:\n  job:\n" + "\n".join("    " + line for line in job.splitlines())
    )


def test_a_write_token_next_to_a_pr_checkout_is_flagged() -> None:
    job = """\
runs-on: ubuntu-latest
permissions: {contents: write}
steps:
  - uses: actions/checkout@v4
    with: {ref: "${{ github.event.pull_request.head.sha }}", persist-credentials: false}
"""
    assert check_pr_jobs_hold_no_write_token(_workflow(job))
    assert check_write_jobs_run_default_branch_only(_workflow(job))


def test_a_token_step_in_a_read_only_pr_job_is_flagged() -> None:
    job = """\
runs-on: ubuntu-latest
permissions: {contents: read}
steps:
  - uses: actions/checkout@v4
    with: {path: pr, persist-credentials: false}
  - run: gh pr comment --body hi
    env: {GH_TOKEN: "${{ github.token }}"}
"""
    assert check_pr_jobs_hold_no_write_token(_workflow(job))


def test_a_job_without_declared_permissions_counts_as_writing() -> None:
    job = """\
runs-on: ubuntu-latest
steps:
  - uses: actions/checkout@v4
    with: {persist-credentials: false}
"""
    assert check_pr_jobs_hold_no_write_token(_workflow(job))


def test_installing_from_a_pr_checkout_in_a_write_job_is_flagged() -> None:
    job = """\
runs-on: ubuntu-latest
permissions: {contents: write}
steps:
  - uses: actions/checkout@v4
    with: {ref: "${{ github.event.repository.default_branch }}", path: trusted,
           persist-credentials: false}
  - run: python -m pip install -c trusted/constraints/workflows.txt --no-build-isolation ./parts/tool
  - uses: actions/download-artifact@v4
    with: {path: trusted/runs}
"""
    findings = check_write_jobs_run_default_branch_only(_workflow(job))
    assert any("installs ./parts/tool" in f for f in findings)
    assert any("downloads artifacts into trusted/runs" in f for f in findings)


def test_runs_on_from_a_pr_reading_job_is_flagged() -> None:
    workflow = load("""
on: pull_request
jobs:
  plan:
    runs-on: ubuntu-latest
    permissions: {contents: read}
    steps:
      - uses: actions/checkout@v4
        with: {persist-credentials: false}
  device:
    needs: plan
    strategy:
      matrix: ${{ fromJSON(needs.plan.outputs.targets) }}
    runs-on: ${{ fromJSON(needs.plan.outputs.labels)[matrix.runner] }}
    steps: []
  by-input:
    runs-on: ${{ inputs.runner }}
    steps: []
""")
    findings = check_runs_on_is_trusted(workflow)
    assert any(f.startswith("device:") for f in findings)
    assert any(f.startswith("by-input:") for f in findings)


def test_a_trusted_label_table_indexed_by_the_matrix_is_accepted() -> None:
    workflow = load("""
on: pull_request
jobs:
  runners:
    runs-on: ubuntu-latest
    permissions: {contents: read}
    steps:
      - uses: actions/checkout@v4
        with: {ref: "${{ github.event.repository.default_branch }}", persist-credentials: false}
  plan:
    runs-on: ubuntu-latest
    permissions: {contents: read}
    steps:
      - uses: actions/checkout@v4
        with: {path: pr, persist-credentials: false}
  device:
    needs: [runners, plan]
    strategy:
      matrix: ${{ fromJSON(needs.plan.outputs.targets) }}
    runs-on: ${{ fromJSON(needs.runners.outputs.labels)[matrix.runner] }}
    steps: []
""")
    assert check_runs_on_is_trusted(workflow) == []


@pytest.mark.parametrize(
    "script",
    [
        'for row in $(cat list); do echo "$row"; done',
        'for f in `ls projects`; do echo "$f"; done',
    ],
)
def test_word_splitting_loops_are_flagged(script: str) -> None:
    assert check_no_word_splitting_loops(_workflow(f"steps:\n  - run: {json.dumps(script)}"))


def test_a_null_delimited_loop_is_accepted() -> None:
    script = "while IFS= read -r -d '' path; do echo \"$path\"; done < <(find . -print0)"
    assert check_no_word_splitting_loops(_workflow(f"steps:\n  - run: {json.dumps(script)}")) == []


@pytest.mark.parametrize(
    "script",
    [
        "python -m pip install jsonschema",
        "pip install --upgrade pip",
        "python -m pip install -e .",
        "python -m pip install -c other.txt dvc",
        "python -m pip install -c constraints/workflows.txt ./trusted",  # isolated build
        "python -m pip install --no-build-isolation ./trusted",  # its dependencies unpinned
        "python -m pip install -r requirements.txt",
    ],
)
def test_unpinned_pip_installs_are_flagged(script: str) -> None:
    assert check_pip_installs_are_pinned(_workflow(f"steps:\n  - run: {json.dumps(script)}"))


@pytest.mark.parametrize(
    "script",
    [
        "python -m pip install jsonschema==4.26.0",
        "python -m pip install -c trusted/constraints/workflows.txt hatchling pyyaml",
        "python -m pip install -c constraints/workflows.txt --no-build-isolation -e '.[test]'",
        "python -m pip install --no-deps --no-build-isolation ./trusted",
    ],
)
def test_pinned_pip_installs_are_accepted(script: str) -> None:
    assert check_pip_installs_are_pinned(_workflow(f"steps:\n  - run: {json.dumps(script)}")) == []


@pytest.mark.parametrize(
    "script",
    [
        "npm install --global @dvcorg/cml@0.20",
        "npm i -g @dvcorg/cml",
        "npm install --global @dvcorg/cml@^0.20.6",
        "npx @dvcorg/cml comment update report.md",
    ],
)
def test_inexact_npm_installs_are_flagged(script: str) -> None:
    assert check_npm_installs_are_exact(_workflow(f"steps:\n  - run: {json.dumps(script)}"))


def test_an_expression_inside_a_script_is_flagged() -> None:
    job = "steps:\n  - run: tango gate ${{ matrix.path }}"
    assert check_no_expressions_in_scripts(_workflow(job))


def test_a_checkout_that_keeps_its_credentials_is_flagged() -> None:
    assert check_checkouts_keep_no_credentials(_workflow("steps:\n  - uses: actions/checkout@v4"))


def test_push_to_main_is_the_only_trusted_head() -> None:
    checkout = "steps:\n  - uses: actions/checkout@v4\n    with: {persist-credentials: false}"
    assert _checkouts(
        _workflow(checkout, on="{push: {branches: [main]}}"),
        {"steps": [{"uses": "actions/checkout@v4"}]},
    ) == [(".", True)]
    for on in (
        "pull_request",
        "{push: {branches: ['*']}}",
        "workflow_dispatch",
        "[push, pull_request]",
    ):
        assert _checkouts(
            _workflow(checkout, on=on), {"steps": [{"uses": "actions/checkout@v4"}]}
        ) == [(".", False)], on
