"""GitOps: plan a change, publish a run, promote what merged, the registry, the local forge.

Thin: each function finds the repository (default: the one holding the working directory)
and calls :mod:`tango_ci.gitops` or :mod:`tango_ci.registry`, which the local forge calls too.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tango_ci.exceptions import TangoError
from tango_ci.spec import ProjectSpec, find_repo_root, load_project

if TYPE_CHECKING:
    from tango_ci.gitops.plan import Plan
    from tango_ci.gitops.publish import Publication


def _repo(repo_root: Path | None) -> Path:
    return Path(repo_root) if repo_root is not None else find_repo_root(Path.cwd())


def plan_change(
    base: str | None,
    head: str = "HEAD",
    *,
    everything: bool = False,
    only: Iterable[str] = (),
    repo_root: Path | None = None,
) -> Plan:
    """Which projects and targets the change ``base..head`` needs to run (or every project,
    or those named in ``only``), as the workflows' matrices."""
    from tango_ci.gitops.plan import make_plan

    return make_plan(_repo(repo_root), base, head, everything=everything, only=tuple(only))


def write_github_output(plan: Plan) -> Path | None:
    """Append the plan's matrices to the file $GITHUB_OUTPUT names; None when it is unset."""
    from tango_ci.gitops.plan import write_github_output as write

    return write(plan)


def publish_run(
    project: Path | ProjectSpec,
    *,
    run_id: str | None = None,
    source: str = "HEAD",
    push: bool = True,
    repo_root: Path | None = None,
) -> Publication:
    """Store a finished run's artifacts in the DVC remote and commit its report to
    ``reports/<project>`` (pushed to origin when ``push`` and there is one).

    The run is ``run_id`` of the project (default: its latest) under the repository's runs
    folder ($TANGO_RUNS_DIR when set); ``source`` is the commit it was made from.
    """
    from tango_ci.gitops.publish import publish_run as publish
    from tango_ci.registry.records import NAME
    from tango_ci.rundir import find_run, runs_root

    if run_id is not None and not NAME.match(run_id):
        raise TangoError(f"--run '{run_id}' is not a run id (letters, digits, '.', '_', '-')")
    root = _repo(repo_root)
    spec = project if isinstance(project, ProjectSpec) else load_project(Path(project))
    return publish(root, find_run(runs_root(root), spec.name, run_id), source, push=push)


def promote_merged(
    *,
    head: str = "HEAD",
    base: str | None = None,
    stage: str = "prod",
    push: bool = True,
    repo_root: Path | None = None,
) -> list[dict]:
    """Register and assign to ``stage`` every target that passed in the newest report of each
    project merged into ``head``, unless it is registered already.

    ``base`` (main before the push) decides which failed reports are this push's to tell.
    Returns one entry per project acted on; :func:`promotion_lines` tells them.
    """
    from tango_ci.gitops.promote import promote_pending

    return promote_pending(_repo(repo_root), head, base=base, stage=stage, push=push)


def promotion_lines(
    outcome: list[dict],
    stage: str = "prod",
    head: str = "HEAD",
    repo_root: Path | None = None,
) -> list[str]:
    """What :func:`promote_merged` did, one line per target (and per failed gate); when it
    did nothing, also the projects whose reports do not count as merged into ``head``, and
    why (made from another version of the project, or not merged)."""
    from tango_ci.gitops.promote import promotion_lines as lines
    from tango_ci.gitops.reports import unmerged_reports

    unmerged = [] if outcome else unmerged_reports(_repo(repo_root), head)
    return lines(outcome, stage, unmerged)


def registry_overview(repo_root: Path | None = None) -> list[dict]:
    """Every registered artifact: its latest version and the version in each stage."""
    from tango_ci.registry import Registry

    return Registry(_repo(repo_root)).overview()


def artifact_versions(name: str, repo_root: Path | None = None) -> list[dict]:
    """Versions of artifact ``name``, newest first, with their stages and records."""
    from tango_ci.registry import Registry

    return Registry(_repo(repo_root)).versions(name)


def artifact_history(name: str, repo_root: Path | None = None) -> list[dict]:
    """Registrations and stage assignments of artifact ``name``, oldest first."""
    from tango_ci.registry import Registry

    return Registry(_repo(repo_root)).history(name)


def promote(
    name: str,
    version: str,
    stage: str = "prod",
    *,
    push: bool = True,
    repo_root: Path | None = None,
) -> str:
    """Assign ``version`` of ``name`` to ``stage``; returns the new tag."""
    from tango_ci.registry import Registry

    return Registry(_repo(repo_root)).promote(name, version, stage, push=push)


def rollback(
    name: str, stage: str = "prod", *, push: bool = True, repo_root: Path | None = None
) -> tuple[str, str, str]:
    """Assign again the version that held ``stage`` before; returns (from, to, new tag)."""
    from tango_ci.registry import Registry

    return Registry(_repo(repo_root)).rollback(name, stage, push=push)


def pull_artifact(reference: str, to: Path, *, repo_root: Path | None = None) -> dict:
    """Fetch the artifact ``reference`` names (NAME#STAGE, NAME@vX.Y.Z, NAME) into ``to``,
    every file verified against the registry's record before anything is written.

    Returns its name, version, record and files (relpath -> sha256).
    """
    from tango_ci.dvcstore import pull_dir
    from tango_ci.registry import Registry
    from tango_ci.registry.records import check_record

    entry = Registry(_repo(repo_root)).resolve(reference)
    name = f"{entry['name']}@{entry['version']}"
    record = check_record(entry["record"], f"{name}: the record in its tag", artifact=True)
    return {
        "name": entry["name"],
        "version": entry["version"],
        "record": record,
        "files": pull_dir(record["artifact"], to, name=name),
    }


def create_forge(path: Path, *, bench_seconds: float | None = None) -> Path:
    """A bare repository whose pushes run the pipeline on this host (`tango gitops local`)."""
    from tango_ci.gitops.local import create

    return create(path, run_args=("--bench-seconds", str(bench_seconds)) if bench_seconds else ())


def forge_status(path: Path, *, wait: bool = False) -> list[dict]:
    """The jobs of a local forge, oldest first; with ``wait``, once none is queued or running."""
    from tango_ci.gitops import local

    return local.wait(path) if wait else local.status(path)
