"""The ``reports/<project>`` branches, read: which report of a project a push to main merged.

Each report is a commit whose ``results.json`` says which commit the run was made from
(written by :mod:`tango_ci.gitops.publish`). A report branch holds what anyone with push
access wrote, so every ``results.json`` is read as data, and one that is not a report this
tool wrote is never promoted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tango_ci.exceptions import TangoError
from tango_ci.gitrepo import (
    first_parent_trees,
    git,
    is_ancestor,
    read_blob,
    ref_names,
    rev_parse,
    tree_id,
)
from tango_ci.registry.records import MAX_JSON_BYTES, NAME, check_results, parse_json

REPORT_BRANCH = "reports/{project}"


def _report_refs(repo: Path, project: str) -> list[str]:
    branch = REPORT_BRANCH.format(project=project)
    return [
        ref
        for ref in (f"refs/remotes/origin/{branch}", f"refs/heads/{branch}")
        if rev_parse(repo, ref)
    ]


def read_report(repo: Path, commit: str) -> dict | None:
    """results.json of a report commit, checked as data; None when it is not a report."""
    try:
        data = read_blob(repo, commit, "results.json", MAX_JSON_BYTES)
        if data is None:
            return None
        what = f"results.json of report {commit[:10]}"
        return check_results(parse_json(data, what), what)
    except TangoError:
        return None  # not a report this tool wrote: never promoted


def reports(repo: Path, project: str) -> Iterator[tuple[str, dict]]:
    """Every report of ``project`` (commit, results), newest first, read as it is asked for."""
    refs = _report_refs(repo, project)
    if not refs:
        return
    for commit in git(repo, "log", "--format=%H", *refs).splitlines():
        results = read_report(repo, commit)
        if results and results["project"] == project and results.get("source_commit"):
            yield commit, results


def is_merged(repo: Path, results: dict, head: str, trees: set[str] | None = None) -> bool:
    """Whether the report's source is in ``head``: an ancestor, or (squash and rebase merges)
    a commit with the same tree as main had after a merge. And its project folder must be
    the same at ``head``: a report of an older version of the project is out of date."""
    source = results.get("source_commit")
    if not source or not rev_parse(repo, source):
        return False
    folder = results.get("path") or f"projects/{results['project']}"
    if tree_id(repo, source, folder) != tree_id(repo, head, folder):
        return False
    if is_ancestor(repo, source, head):
        return True
    trees = trees if trees is not None else first_parent_trees(repo, head)
    return tree_id(repo, source) in trees


def find_report(
    repo: Path, project: str, head: str, base: str | None = None
) -> tuple[str, dict] | None:
    """The newest report of ``project`` made from a commit of this push: merged into
    ``head`` (see :func:`is_merged`) and not made from what ``base`` already had."""
    base = base if base and rev_parse(repo, base) else None
    trees = first_parent_trees(repo, head)
    for commit, results in reports(repo, project):
        if base and is_ancestor(repo, results["source_commit"], base):
            continue  # made from what main already had: an earlier push's report
        if is_merged(repo, results, head, trees):
            return commit, results
    return None


def report_projects(repo: Path) -> list[str]:
    """Projects with a report branch, here or on origin."""
    names = set()
    for ref in ref_names(repo, "refs/remotes/origin/reports/", "refs/heads/reports/"):
        project = ref.split("/reports/", 1)[1]
        if NAME.match(project):
            names.add(project)
    return sorted(names)


def why_not_merged(repo: Path, results: dict, head: str) -> str:
    """Why a report does not count as merged into ``head`` (see :func:`is_merged`)."""
    source = str(results.get("source_commit") or "")
    folder = results.get("path") or f"projects/{results['project']}"
    if not source or not rev_parse(repo, source):
        return f"its source commit {source[:12]} is not in this repository"
    if tree_id(repo, source, folder) != tree_id(repo, head, folder):
        return (
            f"it was made from commit {source[:10]}, where {folder} is not as {head} has it; "
            "publish a run of the project as merged"
        )
    return f"its source commit {source[:10]} is not merged into {head}"


def unmerged_reports(repo: Path, head: str) -> list[tuple[str, dict, str]]:
    """Projects of ``head`` with reports of which none counts as merged: (project, newest
    report's results, why it does not count). What `tango ci promote` tells when it promotes
    nothing, so "nothing to promote" is not taken for "registered already"."""
    trees = first_parent_trees(repo, head)
    found = []
    for project in report_projects(repo):
        newest = next(reports(repo, project), None)
        if newest is None:
            continue
        results = newest[1]
        folder = results.get("path") or f"projects/{project}"
        if not tree_id(repo, head, f"{folder}/project.yaml"):
            continue  # not a project of main (removed, or never merged)
        if any(is_merged(repo, other, head, trees) for _, other in reports(repo, project)):
            continue
        found.append((project, results, why_not_merged(repo, results, head)))
    return found
