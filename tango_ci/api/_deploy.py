"""Deployment bundles: from a local run, or from a registry version whose run is here."""

from __future__ import annotations

from pathlib import Path

from tango_ci.exceptions import TangoError
from tango_ci.rundir import find_run, latest_run, runs_root
from tango_ci.spec import ProjectSpec, find_repo_root, load_project


def deploy_run(
    project: Path | ProjectSpec, target: str, out: Path, run_id: str | None = None
) -> dict:
    """The bundle of ``target`` from a run of ``project`` (default: its latest) into ``out``."""
    from tango_ci.deploy import build_bundle

    spec = project if isinstance(project, ProjectSpec) else load_project(Path(project))
    spec.target(target)  # an unknown target is named with the valid ones
    runs = runs_root(find_repo_root(spec.folder))
    run = find_run(runs, spec.name, run_id) if run_id else latest_run(runs, spec.name)
    if run is None:
        raise TangoError(f"project {spec.name} has no run yet: `tango run projects/{spec.name}`")
    return build_bundle(spec, run, target, out)


def deploy_version(reference: str, out: Path, repo_root: Path | None = None) -> dict:
    """The bundle of a registry version (``NAME#prod``, ``NAME@v1.2.0``) into ``out``: from
    the run that produced it when that run is on this machine, else from its artifact pulled
    from the DVC remote (every file checked against the registry's record)."""
    import tempfile

    from tango_ci.api._gitops import pull_artifact
    from tango_ci.deploy import build_bundle, bundle_from_artifact
    from tango_ci.registry import Registry

    root = find_repo_root(repo_root or Path.cwd())
    entry = Registry(root).resolve(reference)
    record = entry["record"]
    project, target, run_id = record.get("project"), record.get("target"), record.get("run")
    if not (isinstance(project, str) and isinstance(target, str) and isinstance(run_id, str)):
        raise TangoError(f"{reference}: its record names no project, target and run")
    spec = load_project(root / "projects" / project)
    version = f"{entry['name']}@{entry['version']}"
    runs = runs_root(root)
    if (runs / spec.name / run_id / "spec.json").is_file():
        return build_bundle(spec, find_run(runs, spec.name, run_id), target, out, version)
    with tempfile.TemporaryDirectory(prefix="tango-deploy-") as folder:
        pulled = Path(folder) / "artifact"
        pull_artifact(reference, pulled, repo_root=root)
        return bundle_from_artifact(spec, pulled, record, out, version)
