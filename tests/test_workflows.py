"""Workflows pass actionlint and zizmor, never expand untrusted values inside run:, and install
the pinned versions of constraints/workflows.txt."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; `pip install -e '.[test]'` installs it")
    return path


def test_there_are_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"tests.yml", "validate.yml", "profile.yml"}


def test_actionlint_is_clean() -> None:
    result = subprocess.run(
        [_tool("actionlint"), *map(str, WORKFLOWS)], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_is_clean() -> None:
    result = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", ".github/workflows"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr


_UNTRUSTED = re.compile(r"\$\{\{\s*github\.(event|head_ref)")


def _run_scripts(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["run"]] if isinstance(node.get("run"), str) else []
        return found + [s for v in node.values() for s in _run_scripts(v)]
    if isinstance(node, list):
        return [s for v in node for s in _run_scripts(v)]
    return []


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_no_untrusted_expansion_in_run(workflow: Path) -> None:
    scripts = _run_scripts(yaml.safe_load(workflow.read_text()))
    offending = [s for s in scripts if _UNTRUSTED.search(s)]
    assert not offending, f"pass github.event values through env:, not inline: {offending}"


def test_the_untrusted_check_catches_an_inline_expansion() -> None:
    job = {"steps": [{"run": "echo ${{ github.event.pull_request.title }}"}]}
    assert [s for s in _run_scripts(job) if _UNTRUSTED.search(s)]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_third_party_actions_are_pinned_to_full_shas(workflow: Path) -> None:
    uses = re.findall(r"uses:\s*([^\s#]+)", workflow.read_text())
    for ref in uses:
        if ref.startswith("./"):
            continue
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), ref


def test_the_constraints_pin_every_dependency_within_its_range() -> None:
    """constraints/workflows.txt (what CI installs) must keep up with pyproject.toml."""
    import tomllib

    from packaging.requirements import Requirement

    def key(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name.lower())

    pins = dict(
        line.split("==", 1)
        for line in (REPO / "constraints" / "workflows.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    pins = {key(name): version.strip() for name, version in pins.items()}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    wanted += tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    for text in wanted:
        requirement = Requirement(text)
        assert key(requirement.name) in pins, f"{requirement.name} is not in the constraints"
        assert requirement.specifier.contains(pins[key(requirement.name)], prereleases=True), (
            f"{requirement.name}=={pins[key(requirement.name)]} is outside {requirement}"
        )


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_a_job_that_gates_has_the_registry_tags(workflow: Path) -> None:
    """`tango gate` compares with the registry's prod versions: git tags, which a shallow
    checkout lacks (the gate would then find no production model and compare with nothing)."""
    jobs = yaml.safe_load(workflow.read_text()).get("jobs", {})
    for name, job in jobs.items():
        steps = job.get("steps", [])
        if not any("tango gate" in s for s in _run_scripts(steps)):
            continue
        checkouts = [s.get("with", {}) for s in steps if "actions/checkout@" in s.get("uses", "")]
        gated = [c for c in checkouts if c.get("path") != "trusted"]
        assert gated and all(c.get("fetch-depth") == 0 for c in gated), f"{workflow.name}:{name}"
