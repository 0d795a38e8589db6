"""Reading workflows as data for the checks of test_workflows.py: triggers, jobs, steps,
checkouts, commands and pip installs, as yaml.safe_load gives them."""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Callable

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
