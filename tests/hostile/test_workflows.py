"""The workflows keep pull-request code away from write tokens and self-hosted runner choice.

Static checks on the parsed YAML of .github/workflows. A pull request is untrusted: its
checkout is data, and any job that checks it out or installs it holds a read-only token.
Each check is a function from a workflow (as yaml.safe_load returns it) to a list of
findings, run on every real workflow and on bad snippets (among them the jobs of the
pipeline before the hostile review), so that each check is shown to be able to fail.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
CONSTRAINTS = "constraints/workflows.txt"

# Refs whose code is the default branch's. A pull request's base.sha is not among them: a
# pull request may target any branch, including one its author pushed.
TRUSTED_REFS = {"${{ github.event.repository.default_branch }}", "main", "refs/heads/main"}
TOKEN = re.compile(r"secrets\.|github\.token|GITHUB_TOKEN")
WORD_SPLIT_LOOP = re.compile(r"\bfor\s+\w+\s+in\s+[^;\n]*(\$\(|`)")
# values a pull request or whoever starts a run can set (the default branch's name is not one)
UNTRUSTED_CONTEXT = re.compile(
    r"github\.event\.(?!repository\.default_branch\b)|"
    r"github\.head_ref|inputs\."
)
EXACT_NPM = re.compile(r"(@[\w.-]+/)?[\w.-]+@\d+\.\d+\.\d+(-[\w.]+)?")
_VALUE_OPTIONS = {
    "-c",
    "--constraint",
    "-r",
    "--requirement",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "-t",
    "--target",
    "--prefix",
    "--root",
    "-e",
    "--editable",
}

Check = Callable[[dict], list]


# ----------------------------------------------------------------------------- reading
def load(text: str) -> dict:
    return yaml.safe_load(text)


def _triggers(workflow: dict) -> dict:
    on = workflow.get(True, workflow.get("on")) or {}  # YAML 1.1 reads `on:` as True
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return {name: None for name in on}
    return on


def _head_is_trusted(workflow: dict) -> bool:
    """Whether github.sha is a default-branch commit: only pushes to main and schedules."""
    triggers = _triggers(workflow)
    for name, config in triggers.items():
        if name == "schedule":
            continue
        if (
            name == "push"
            and isinstance(config, dict)
            and config.get("branches")
            and set(config["branches"]) <= {"main"}
            and "tags" not in config
        ):
            continue
        return False
    return bool(triggers)


def _jobs(workflow: dict) -> dict[str, dict]:
    return workflow.get("jobs") or {}


def _steps(job: dict) -> list[dict]:
    return job.get("steps") or []


def _uses(step: dict, action: str) -> bool:
    return str(step.get("uses", "")).split("@")[0] == action


def _checkouts(workflow: dict, job: dict) -> list[tuple[str, bool]]:
    """(path, trusted) of each actions/checkout step of the job."""
    found = []
    for step in _steps(job):
        if _uses(step, "actions/checkout"):
            options = step.get("with") or {}
            ref = str(options.get("ref", "")).strip()
            trusted = "repository" not in options and (
                ref in TRUSTED_REFS
                or (ref in ("", "${{ github.sha }}") and _head_is_trusted(workflow))
            )
            found.append((posixpath.normpath(str(options.get("path", "."))), trusted))
    return found


def _commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script, as words (heredoc bodies are skipped)."""
    commands, heredoc = [], None
    for line in script.replace("\\\n", " ").splitlines():
        if heredoc is not None:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        marker = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        heredoc = marker.group(1) if marker else None
        for part in re.split(r"&&|\|\||[;|]|\$\(|\)", line):
            try:
                words = shlex.split(part, comments=True)
            except ValueError:
                words = part.split()
            if words:
                commands.append(words)
    return commands


def _pip_installs(script: str) -> list[list[str]]:
    """The arguments after `pip install` of each pip install command."""
    found = []
    for words in _commands(script):
        for i in range(len(words) - 1):
            if re.fullmatch(r"(.*/)?pip3?", words[i]) and words[i + 1] == "install":
                found.append(words[i + 2 :])
                break
    return found


def _install_sources(args: list[str]) -> list[str]:
    """Local paths that a pip install reads: packages, requirement and constraint files."""
    sources, i = [], 0
    while i < len(args):
        word = args[i]
        if word in _VALUE_OPTIONS and i + 1 < len(args):
            if word in ("-c", "--constraint", "-r", "--requirement", "-e", "--editable"):
                sources.append(args[i + 1])
            i += 2
            continue
        if not word.startswith("-") and (word.startswith((".", "/")) or "/" in word):
            sources.append(word)
        i += 1
    return [re.sub(r"\[.*\]$", "", s) for s in sources]


def _holder(path: str, checkouts: list[tuple[str, bool]]) -> tuple[str, bool] | None:
    """The checkout whose folder holds ``path`` (the deepest one)."""
    holding = [c for c in checkouts if c[0] == "." or path == c[0] or path.startswith(c[0] + "/")]
    return max(holding, key=lambda c: len(c[0])) if holding else None


def _installs(workflow: dict, job: dict) -> list[tuple[str, bool]]:
    """(source, trusted) of everything the job's pip installs read from disk."""
    checkouts = _checkouts(workflow, job)
    found = []
    for step in _steps(job):
        folder = str(
            step.get(
                "working-directory",
                job.get("defaults", {}).get("run", {}).get("working-directory", "."),
            )
        )
        for args in _pip_installs(str(step.get("run", ""))):
            for source in _install_sources(args):
                if source.startswith("$") or source.startswith("/"):
                    found.append((source, False))  # not from a checkout: unknown
                    continue
                holder = _holder(posixpath.normpath(posixpath.join(folder, source)), checkouts)
                found.append((source, bool(holder and holder[1])))
    return found


def _writes(workflow: dict, job: dict) -> list[str]:
    """The scopes the job's token may write (all of them when nothing is declared)."""
    permissions = job.get("permissions", workflow.get("permissions"))
    if permissions is None or permissions == "write-all":
        return ["(default token permissions)"]
    if isinstance(permissions, dict):
        return [scope for scope, level in permissions.items() if level == "write"]
    return []


def _token_steps(workflow: dict, job: dict) -> list[str]:
    found = []
    if TOKEN.search(json.dumps(job.get("env") or {})):
        found.append("job env")
    if TOKEN.search(json.dumps(workflow.get("env") or {})):
        found.append("workflow env")
    if "secrets" in job:
        found.append("secrets passed to a reusable workflow")
    for step in _steps(job):
        if _uses(step, "actions/checkout"):
            continue  # its own token is used by the action alone (persist-credentials: false)
        if TOKEN.search(json.dumps(step)):
            found.append(str(step.get("name") or step.get("uses") or step.get("run"))[:60])
    return found


def _runs_pr_code(workflow: dict, job: dict) -> bool:
    return any(not trusted for _, trusted in _checkouts(workflow, job)) or any(
        not trusted for _, trusted in _installs(workflow, job)
    )


def _tainted_jobs(workflow: dict) -> set[str]:
    """Jobs whose outputs may carry pull-request content: they check it out, download run
    artifacts, or read the outputs of such a job."""
    jobs = _jobs(workflow)
    tainted = {
        name
        for name, job in jobs.items()
        if any(not trusted for _, trusted in _checkouts(workflow, job))
        or any(_uses(s, "actions/download-artifact") for s in _steps(job))
        or UNTRUSTED_CONTEXT.search(json.dumps(job))
    }
    changed = True
    while changed:
        changed = False
        for name, job in jobs.items():
            if name not in tainted and any(
                f"needs.{other}.outputs" in json.dumps(job) for other in tainted
            ):
                tainted.add(name)
                changed = True
    return tainted


# ----------------------------------------------------------------------------- checks
def check_pr_jobs_hold_no_write_token(workflow: dict) -> list[str]:
    """A job that checks out or installs the pull request holds no write scope, no token."""
    findings = []
    for name, job in _jobs(workflow).items():
        if not _runs_pr_code(workflow, job):
            continue
        for scope in _writes(workflow, job):
            findings.append(f"{name}: runs pull-request code with {scope}: write")
        for step in _token_steps(workflow, job):
            findings.append(f"{name}: runs pull-request code and gives a token to {step!r}")
    return findings


def check_write_jobs_run_default_branch_only(workflow: dict) -> list[str]:
    """A job with a write scope checks out and installs the default branch only, and keeps
    downloaded artifacts outside its checkouts."""
    findings = []
    for name, job in _jobs(workflow).items():
        if not _writes(workflow, job):
            continue
        checkouts = _checkouts(workflow, job)
        for path, trusted in checkouts:
            if not trusted:
                findings.append(
                    f"{name}: has a write token and checks out {path} from a "
                    "ref that is not the default branch"
                )
        for source, trusted in _installs(workflow, job):
            if not trusted:
                findings.append(
                    f"{name}: has a write token and installs {source}, not from "
                    "a default-branch checkout"
                )
        for step in _steps(job):
            if _uses(step, "actions/download-artifact"):
                where = str((step.get("with") or {}).get("path", "."))
                if not where.startswith("${{ runner.temp }}"):
                    findings.append(
                        f"{name}: has a write token and downloads artifacts into "
                        f"{where}, not under runner.temp"
                    )
    return findings


def check_runs_on_is_trusted(workflow: dict) -> list[str]:
    """`runs-on` never comes from a job that read pull-request content, from inputs or from
    the event; a pull-request value may only pick an entry of a trusted job's table."""
    tainted = _tainted_jobs(workflow)
    findings = []
    for name, job in _jobs(workflow).items():
        runs_on = json.dumps(job.get("runs-on", ""))
        matrix = json.dumps((job.get("strategy") or {}).get("matrix", ""))
        matrix_tainted = any(f"needs.{other}.outputs" in matrix for other in tainted) or bool(
            UNTRUSTED_CONTEXT.search(matrix)
        )
        for expression in re.findall(r"\$\{\{(.*?)\}\}", runs_on):
            rest = re.sub(
                r"fromJSON\(\s*needs\.([\w-]+)\.outputs\.[\w-]+\s*\)\[matrix\.[\w-]+\]",
                lambda m: "" if m.group(1) not in tainted else m.group(0),
                expression,
                flags=re.IGNORECASE,
            )
            sources = [f"needs.{other}" for other in tainted if f"needs.{other}." in rest]
            if UNTRUSTED_CONTEXT.search(rest):
                sources.append("the event or inputs")
            if "matrix." in rest and matrix_tainted:
                sources.append("a matrix built from pull-request content")
            if sources:
                findings.append(
                    f"{name}: runs-on {expression.strip()!r} comes from {', '.join(sources)}"
                )
    return findings


def _scripts(workflow: dict) -> list[tuple[str, str]]:
    return [
        (name, str(step["run"]))
        for name, job in _jobs(workflow).items()
        for step in _steps(job)
        if "run" in step
    ]


def check_no_word_splitting_loops(workflow: dict) -> list[str]:
    """No `for x in $(...)`: it splits and globs paths (a folder `sp ace*` becomes two)."""
    return [
        f"{name}: {match.group(0)!r}"
        for name, script in _scripts(workflow)
        for match in WORD_SPLIT_LOOP.finditer(script)
    ]


def check_no_expressions_in_scripts(workflow: dict) -> list[str]:
    """Values reach scripts through env: only, never expanded into the script's text."""
    return [
        f"{name}: {expression!r} inside run:"
        for name, script in _scripts(workflow)
        for expression in re.findall(r"\$\{\{.*?\}\}", script)
    ]


def _requirement_names(args: list[str]) -> list[str]:
    """The requirements a pip install takes from the index (not local paths)."""
    return [
        a
        for i, a in enumerate(args)
        if not a.startswith("-")
        and (i == 0 or args[i - 1] not in _VALUE_OPTIONS)
        and a not in _install_sources(args)
    ]


def _local_packages(args: list[str]) -> list[str]:
    files = {
        args[i + 1]
        for i, option in enumerate(args[:-1])
        if option in ("-c", "--constraint", "-r", "--requirement")
    }
    return [source for source in _install_sources(args) if source not in files]


def check_pip_installs_are_pinned(workflow: dict) -> list[str]:
    """Every pip install uses the constraints file, or pins each requirement with == (and a
    local package then installs with --no-deps); a local package is built without build
    isolation, which would fetch an unpinned build backend."""
    findings = []
    for name, script in _scripts(workflow):
        for args in _pip_installs(script):
            text = " ".join(args)
            constrained = any(
                option in ("-c", "--constraint") and args[i + 1].endswith(CONSTRAINTS)
                for i, option in enumerate(args[:-1])
            )
            unpinned = [n for n in _requirement_names(args) if "==" not in n]
            if "--no-deps" not in args:
                unpinned += _local_packages(args)
            unpinned += [
                args[i + 1] for i, o in enumerate(args[:-1]) if o in ("-r", "--requirement")
            ]
            if unpinned and not constrained:
                findings.append(
                    f"{name}: pip install {text} pins neither with -c "
                    f"{CONSTRAINTS} nor with == ({', '.join(unpinned)})"
                )
            if _local_packages(args) and "--no-build-isolation" not in args:
                findings.append(
                    f"{name}: pip install {text} builds in an isolated "
                    "environment with an unpinned backend"
                )
    return findings


def check_npm_installs_are_exact(workflow: dict) -> list[str]:
    """Every npm install and npx names an exact version (name@1.2.3)."""
    findings = []
    for name, script in _scripts(workflow):
        for words in _commands(script):
            if words[0] == "npm" and len(words) > 1 and words[1] in ("install", "i", "add"):
                packages = [w for w in words[2:] if not w.startswith("-")]
            elif words[0] == "npx":
                packages = [w for w in words[1:] if not w.startswith("-")][:1]
                packages += [w.split("=", 1)[1] for w in words if w.startswith("--package=")]
            else:
                continue
            findings += [
                f"{name}: {' '.join(words)} does not pin {p} exactly"
                for p in packages
                if not EXACT_NPM.fullmatch(p)
            ]
    return findings


def check_checkouts_keep_no_credentials(workflow: dict) -> list[str]:
    """No checkout leaves the token in .git/config for later steps."""
    return [
        f"{name}: a checkout without persist-credentials: false"
        for name, job in _jobs(workflow).items()
        for step in _steps(job)
        if _uses(step, "actions/checkout")
        and (step.get("with") or {}).get("persist-credentials") is not False
    ]


CHECKS: list[Check] = [
    check_pr_jobs_hold_no_write_token,
    check_write_jobs_run_default_branch_only,
    check_runs_on_is_trusted,
    check_no_word_splitting_loops,
    check_no_expressions_in_scripts,
    check_pip_installs_are_pinned,
    check_npm_installs_are_exact,
    check_checkouts_keep_no_credentials,
]


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
