"""Promotion after a push to main: what every merged report passed, registered and in prod.

:func:`promote_pending` is the one promotion loop, run by `tango ci promote` (the promote
workflow) and by the local forge alike, and :func:`promotion_lines` is the one way its outcome
is told. A report is found on its ``reports/<project>`` branch (:mod:`tango_ci.gitops.reports`);
every target of it that passed its gate and is not registered yet gets a new version at the
head of main, assigned to ``prod``. So a promotion that failed is made by the next push, and
promoting twice promotes nothing the second time.

A report branch holds what anyone with push access wrote, so a target whose artifact is not
in the DVC remote that main configures is never registered: a device would pull it from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tango_ci.exceptions import TangoError
from tango_ci.gitops.reports import is_merged, report_projects, reports
from tango_ci.gitrepo import first_parent_trees, is_ancestor, rev_parse, tree_id
from tango_ci.printable import printable
from tango_ci.registry import Registry, artifact_name


def configured_remote(repo: Path) -> str:
    """The URL of the DVC remote the checkout of main configures, or why there is none (a
    text without "://" or a leading "/", so no artifact's remote equals it)."""
    from tango_ci.dvcstore import remote_url

    try:
        return remote_url(repo)
    except TangoError as exc:
        return f"none: {exc}"


def _local(url: str) -> bool:
    return "://" not in url and url.startswith("/")


def _foreign_remote(artifact: dict, remote: str) -> str | None:
    """Why an artifact stored elsewhere than ``remote`` is not promoted; None when it is there.

    A remote on a server must be the very one main names. A local folder is compared as a
    kind only: main's relative ``../.dvc-storage`` resolves to another absolute path in each
    checkout (the workflows publish from ``trusted/``), and a folder on the runner is no
    download from elsewhere."""
    stored = artifact["remote"]
    if stored == remote or (_local(stored) and _local(remote)):
        return None
    return (
        f"its artifact is in the DVC remote '{printable(stored[:120])}', not in this "
        f"repository's ({printable(remote[:200])})"
    )


def _registered(registry: Registry, name: str, run: str, report_commit: str) -> bool:
    if name not in registry.names():
        return False
    return any(
        isinstance(v["record"], dict)
        and (v["record"].get("run") == run or v["record"].get("report_commit") == report_commit)
        for v in registry.versions(name)
    )


def promote_results(
    repo: Path,
    results: dict,
    head: str,
    report_commit: str,
    *,
    stage: str = "prod",
    push: bool = True,
    registry: Registry | None = None,
    remote: str | None = None,
) -> list[dict]:
    """Register a version of each passing target at ``head`` and assign it to ``stage``.

    A target whose run (or report) is registered already is left out: promoting is
    idempotent. A target whose artifact is not in ``remote`` (default: the DVC remote of
    ``repo``) is skipped, with the reason.
    """
    if registry is None:
        registry = Registry(repo)
        registry.fetch()
    remote = remote or configured_remote(repo)
    done: list[dict] = []
    for target, entry in sorted(results["targets"].items()):
        name = artifact_name(results["project"], target)
        if not entry["passed"] or "artifact" not in entry:
            done.append(
                {
                    "name": name,
                    "skipped": "gate failed" if not entry["passed"] else "artifact not stored",
                }
            )
            continue
        if _registered(registry, name, results["run"], report_commit):
            continue
        if (foreign := _foreign_remote(entry["artifact"], remote)) is not None:
            done.append({"name": name, "skipped": foreign})
            continue
        record = {
            "project": results["project"],
            "target": target,
            "run": results["run"],
            "task": results["task"],
            "classes": results.get("classes"),
            "architecture": entry.get("architecture", results["architecture"]),
            "engine": entry["engine"],
            "precision": entry["precision"],
            "runner": entry["runner"],
            "metrics": entry["metrics"],
            "artifact": entry["artifact"],
            "report_commit": report_commit,
        }
        if "recipe" in entry:  # engine: auto's int8 recipe, so a rebuild is exact
            record["recipe"] = entry["recipe"]
        version, why = registry.register(name, record, ref=head)
        stage_tag = registry.assign(
            name,
            version,
            stage,
            f"promote {version} to {stage}: gate passed in run {results['run']}",
        )
        tags = sorted([f"{name}@{version}", stage_tag])
        if push:
            registry.publish(name, tags)
        done.append({"name": name, "version": version, "why": why, "tags": tags})
    return done


def promote_pending(
    repo: Path, head: str, *, base: str | None = None, stage: str = "prod", push: bool = True
) -> list[dict]:
    """Promote what the newest merged report of each project passed, if not done yet.

    For every project still in ``head`` whose newest report merged into ``head`` has a passing
    target not registered yet, registers and promotes it; so a promotion that failed is made
    by the next push to main, and running this twice promotes nothing the second time.
    Returns one entry per project acted on: project, report, run, promoted (each target's
    outcome). A report of this push (its source not in ``base``) is listed even when nothing
    of it passed, so that the push's outcome is told.
    """
    head_commit = rev_parse(repo, head)
    if head_commit is None:
        raise TangoError(f"unknown head revision '{head}'")
    base = base if base and rev_parse(repo, base) else None
    registry = Registry(repo)
    registry.fetch()
    remote = configured_remote(repo)
    trees = first_parent_trees(repo, head_commit)
    outcome = []
    for project in report_projects(repo):
        merged = next(
            (
                (commit, results)
                for commit, results in reports(repo, project)
                if is_merged(repo, results, head_commit, trees)
            ),
            None,
        )
        if merged is None:
            continue
        commit, results = merged
        folder = results.get("path") or f"projects/{project}"
        if not tree_id(repo, head_commit, f"{folder}/project.yaml"):
            continue  # the project was removed from main
        news = base is None or not is_ancestor(repo, results["source_commit"], base)
        done = promote_results(
            repo,
            results,
            head_commit,
            commit,
            stage=stage,
            push=push,
            registry=registry,
            remote=remote,
        )
        if any("version" in item for item in done) or (news and done):
            outcome.append(
                {
                    "project": project,
                    "report": commit,
                    "run": results["run"],
                    "passed": results["passed"],
                    "promoted": done,
                }
            )
    return outcome


def promotion_lines(
    outcome: list[dict], stage: str = "prod", unmerged: Sequence[tuple[str, dict, str]] = ()
) -> list[str]:
    """What :func:`promote_pending` did, one line per target, as the CLI prints it and the
    local forge logs it. A report whose gate failed is said so before its targets, so the
    failure is told even when another target of it is promoted. When nothing was promoted,
    ``unmerged`` (:func:`~tango_ci.gitops.reports.unmerged_reports`) says which projects have
    only reports that do not count, and why."""
    if not outcome:
        return [
            "nothing to promote: every merged report is registered already"
            if not unmerged
            else "nothing to promote",
            *(
                f"{project}: no report counts as merged; the newest (run "
                f"{printable(str(results.get('run')))}) does not: {why}"
                for project, results, why in unmerged
            ),
        ]
    lines = []
    for entry in outcome:
        if not entry["passed"]:
            lines.append(
                f"{entry['project']}: the gate failed in run {entry['run']}; only "
                "the targets that passed are promoted"
            )
        for item in entry["promoted"]:
            lines.append(
                f"{item['name']}: skipped ({item['skipped']})"
                if "skipped" in item
                else f"{item['name']}: {item['version']} ({item['why']}) -> {stage}"
            )
    return lines
