"""The checks of test_workflows.py: each takes a workflow (as yaml.safe_load gives it) and
returns its findings."""

from __future__ import annotations

import json
import re

from tests.hostile.workflow_reading import (
    _VALUE_OPTIONS,
    CONSTRAINTS,
    EXACT_NPM,
    UNTRUSTED_CONTEXT,
    WORD_SPLIT_LOOP,
    Check,
    _checkouts,
    _commands,
    _install_sources,
    _installs,
    _jobs,
    _pip_installs,
    _runs_pr_code,
    _steps,
    _tainted_jobs,
    _token_steps,
    _uses,
    _writes,
)


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
