"""Publishing a finished run: its artifacts to the DVC remote, its report to its branch.

:func:`publish_run` is the one way a run is published, by `tango ci publish` (the pipeline
workflow) and by the local forge alike: the run folder is checked as data
(:func:`~tango_ci.gitops.runfolder.collect`), each target's artifact is pushed to the DVC
remote and compared once more with the verified hashes, and report.md, the plots,
results.json and metrics.json are committed to ``reports/<project>``, which promotion reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tango_ci.exceptions import TangoError
from tango_ci.gitops.reports import REPORT_BRANCH
from tango_ci.gitops.runfolder import ArtifactMismatch, collect, report_files
from tango_ci.gitrepo import commit_files, git, has_remote, rev_parse, tree_id
from tango_ci.registry import Registry, artifact_name
from tango_ci.rundir import RunDir


@dataclass(frozen=True)
class Publication:
    """A published run: the report commit, its branch, and the results it holds."""

    commit: str
    branch: str
    pushed: bool  # to origin; else committed to the local branch only
    results: dict

    source_has_project: bool = True  # False: the report can never be promoted

    @property
    def passed(self) -> bool:
        """The run's gate decision, as the report tells it."""
        return bool(self.results["passed"])


def publish_run(
    repo: Path, run_dir: RunDir, source: str = "HEAD", *, push: bool = True
) -> Publication:
    """Store the run's artifacts in the DVC remote of ``repo`` and commit its report to
    ``reports/<project>``, pushed to origin when ``push`` is set and there is an origin.

    ``source`` is the commit the run was made from. Nothing is stored before the whole run
    folder has been checked.
    """
    from tango_ci.dvcstore import remote_url

    results = store_artifacts(collect(run_dir), remote_url(repo))
    source_commit = rev_parse(repo, source) or source
    pushed = push and has_remote(repo)
    write = push_report if pushed else publish_report
    commit = write(repo, results, run_dir, source_commit)
    folder = results.get("path") or f"projects/{results['project']}"
    return Publication(
        commit=commit,
        branch=REPORT_BRANCH.format(project=results["project"]),
        pushed=pushed,
        results=results,
        source_has_project=bool(tree_id(repo, source_commit, f"{folder}/project.yaml")),
    )


def store_artifacts(results: dict, remote_url: str) -> dict:
    """Push every target's artifact to the DVC remote; adds its record to ``results``.

    Only the files :func:`collect` verified are pushed, and what is pushed is compared once
    more with their hashes.
    """
    from tango_ci.dvcstore import push_dir

    for name, target in sorted(results["targets"].items()):
        verified = target.get("artifact_files") or {}
        stored = push_dir(Path(target["artifact_dir"]), remote_url, only=verified)
        for relpath, expected in sorted(verified.items()):
            actual = stored["files"].get(relpath, "(missing)")
            if actual != expected:
                raise ArtifactMismatch(
                    run=results["run"],
                    file=f"compile/{name}/{relpath}",
                    actual=actual,
                    manifest="the verified run",
                    expected=expected,
                )
        target["artifact"] = stored
    return results


def publish_report(repo: Path, results: dict, run_dir: RunDir, source_commit: str) -> str:
    """Commit the run's report, plots and metrics to ``reports/<project>``; returns the commit."""
    files = report_files(run_dir)
    stored = dict(results) | {"source_commit": source_commit}
    files["results.json"] = (json.dumps(stored, indent=2) + "\n").encode()
    metrics = {name: t["metrics"] for name, t in results["targets"].items()}
    files["metrics.json"] = (json.dumps(metrics, indent=2) + "\n").encode()
    files["dvc.yaml"] = b"metrics:\n  - metrics.json\n"  # so `dvc metrics diff` reads it
    verdict = "pass" if results["passed"] else "fail"
    message = (
        f"report {results['project']} run {results['run']}: gate {verdict}\n\n"
        f"source commit {source_commit}\n"
    )
    branch = REPORT_BRANCH.format(project=results["project"])
    commit = commit_files(repo, branch, files, message)
    baseline = production_report(repo, results)
    if baseline and "report.md" in files:  # the same commit, with the diff in its report
        diff = metrics_diff(repo, baseline[1], commit)
        files["report.md"] += (
            f"\n## Against production ({baseline[0]})\n\n"
            f"`dvc metrics diff {baseline[1][:10]} {commit[:10]}`:\n\n"
            f"{diff}\n"
        ).encode()
        commit = commit_files(repo, branch, files, message, amend=True)
    return commit


def production_report(repo: Path, results: dict) -> tuple[str, str] | None:
    """(version, report commit) of the project's production model, when there is one."""
    registry = Registry(repo)
    for target in sorted(results["targets"]):
        try:
            entry = registry.resolve(f"{artifact_name(results['project'], target)}#prod")
        except TangoError:
            continue
        commit = entry["record"].get("report_commit")
        if isinstance(commit, str) and rev_parse(repo, commit):
            return f"{entry['name']}@{entry['version']}", commit
    return None


def metrics_diff(repo: Path, old: str, new: str) -> str:
    """`dvc metrics diff` of two report commits, as a Markdown table."""
    from tango_ci.dvcstore import run_dvc

    try:
        return run_dvc(repo, "metrics", "diff", old[:10], new[:10], "--md", "--all").strip()
    except TangoError as error:  # the report is still worth publishing without it
        return f"({error})"


def push_report(
    repo: Path, results: dict, run_dir: RunDir, source_commit: str, attempts: int = 3
) -> str:
    """Publish and push the report; when another report was pushed meanwhile, rebuild on it."""
    branch = REPORT_BRANCH.format(project=results["project"])
    for _ in range(attempts):
        commit = publish_report(repo, results, run_dir, source_commit)
        refspec = f"refs/heads/{branch}"
        git(repo, "push", "--quiet", "origin", f"{refspec}:{refspec}", check=False)
        if git(repo, "ls-remote", "origin", refspec, check=False).startswith(commit):
            return commit
        git(
            repo,
            "fetch",
            "--quiet",
            "origin",
            f"+{refspec}:refs/remotes/origin/{branch}",
            check=False,
        )
        git(repo, "update-ref", "-d", f"refs/heads/{branch}")  # rebuild on origin's tip
    raise TangoError(
        f"could not push {branch} after {attempts} attempts (another report was "
        "pushed each time, or origin refuses pushes)"
    )
