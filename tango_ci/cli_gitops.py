"""The GitOps commands of `tango`: ci, registry, gitops, and promote, rollback, pull.

Each command parses its options, calls :mod:`tango_ci.api` and prints; the steps themselves
(plan, publish, promote) are the API's, shared with the local forge. :mod:`tango_ci.cli` adds
these apps to the main one: ``ci_app``, ``registry_app`` and ``gitops_app`` as groups, and
``commands`` (promote, rollback, pull) at the top level.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from tango_ci import api
from tango_ci.cli_common import JSON, PUSH, cell, err, out, quoted, say

ci_app = typer.Typer(
    no_args_is_help=True,
    help="The steps the workflows run (plan, publish, promote); see .github/workflows/.",
)
registry_app = typer.Typer(
    no_args_is_help=True,
    help="The model registry: git tags in GTO's formats (NAME@vX.Y.Z, NAME#prod#N).",
)
gitops_app = typer.Typer(
    no_args_is_help=True,
    help="GitOps on one machine without a forge: a bare repository whose pushes run work.",
)
commands = typer.Typer()  # merged into the main app: `tango promote`, `tango rollback`, ...


# ----------------------------------------------------------------------------- ci
@ci_app.command("plan")
def ci_plan(
    base: str | None = typer.Option(
        None,
        "--base",
        help="Base revision (the pull request's base; compared from its merge base).",
    ),
    head: str = typer.Option("HEAD", "--head", help="Head revision (checked out)."),
    everything: bool = typer.Option(False, "--all", help="Plan every project."),
    project: list[str] | None = typer.Option(
        None, "--project", "-p", help="Plan this project (repeatable)."
    ),
    as_json: bool = JSON,
) -> None:
    """Which projects and targets a change needs to run.

    Give --base REV, --all or --project NAME. A project is planned when its project.yaml, a
    DVC pointer (*.dvc) of its data, or a runner file it uses changed between BASE and HEAD. Writes the matrices to
    $GITHUB_OUTPUT (projects, targets, any) when that is set.
    """
    if base is None and not everything and not project:
        raise typer.BadParameter("give --base REV, --all or --project NAME", param_hint="--base")
    plan = api.plan_change(base, head, everything=everything, only=project or ())
    written = api.write_github_output(plan)
    if as_json:
        out.print_json(json.dumps(plan.to_dict()))
        return
    if not plan.projects:
        err.print("nothing to run: no project file, data pointer or used runner file changed")
    for entry in plan.projects:
        err.print(
            f"[bold]{quoted(entry['project'])}[/]: "
            f"{quoted('; '.join(plan.reasons[entry['project']]))}; "
            f"train on {quoted(entry['runner'])} {quoted(entry['runs-on'])}"
        )
        for target in (t for t in plan.targets if t["project"] == entry["project"]):
            say(f"  target {target['target']} on {target['runner']} {target['runs-on']}")
    if written:
        say(f"matrices written to {written}")


@ci_app.command("publish")
def ci_publish(
    project: Path = typer.Argument(..., help="The project folder."),
    run_id: str | None = typer.Option(None, "--run", help="Run id (default: latest)."),
    source: str = typer.Option("HEAD", "--source", help="The commit the run was made from."),
    push: bool = typer.Option(
        True,
        "--push/--no-push",
        help="Push the reports/<project> branch to origin (when the repository has one).",
    ),
) -> None:
    """Store a run's artifacts in DVC and commit its report to reports/<project>.

    The report commit holds report.md, the plots, results.json (per target: verdict, metrics,
    DVC hash of the artifact) and metrics.json with a dvc.yaml, so `dvc metrics diff` works
    between reports. Promotion reads it, and takes only a report whose --source commit holds
    the project folder as main has it: commit the project before you publish.

    Example without a forge: tango ci publish projects/NAME --no-push, then
    tango ci promote --no-push.
    """
    published = api.publish_run(project, run_id=run_id, source=source, push=push)
    say(
        f"report {published.commit[:10]} on {published.branch}; gate "
        f"{'pass' if published.passed else 'fail'}"
    )
    if not published.source_has_project:
        folder = published.results.get("path") or f"projects/{published.results['project']}"
        say(
            f"warning: commit {source} holds no {folder}/project.yaml, so this report can never be "
            "promoted: commit the project, then publish with --source at that commit"
        )


@ci_app.command("promote")
def ci_promote(
    base: str | None = typer.Option(
        None,
        "--base",
        help="main before the push: reports of earlier pushes are then listed only when "
        "something of them is promoted now (default: every merged report, failed gates too).",
    ),
    head: str = typer.Option("HEAD", "--head", help="main after the push."),
    push: bool = PUSH,
) -> None:
    """Register and promote to prod what passed, after a push to main.

    For each project, takes the newest report on reports/<project> made from a commit HEAD
    contains (with the project folder as in HEAD); every target of it that passed its gate
    and is not registered yet gets a new version (at HEAD) assigned to prod. So a promotion
    that failed is made by the next push, and running it twice promotes nothing more.
    """
    outcome = api.promote_merged(head=head, base=base, push=push)
    for line in api.promotion_lines(outcome, head=head):
        say(line)


# ----------------------------------------------------------------------------- registry
@registry_app.command("ls")
def registry_ls(as_json: bool = JSON) -> None:
    """Every artifact with its latest version and the version in each stage (as `gto show`)."""
    rows = api.registry_overview()
    if as_json:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        err.print(
            "the registry is empty: `tango ci promote` registers the targets of merged "
            "reports that passed their gate (without a forge: `tango ci publish PROJECT "
            "--no-push`, then `tango ci promote --no-push`)"
        )
        return
    table = Table("name", "latest", "stages", title_justify="left")
    for row in rows:
        table.add_row(
            cell(row["name"]),
            cell(row["latest"] or "-"),
            cell(", ".join(f"{s}: {v}" for s, v in row["stages"].items()) or "-"),
        )
    out.print(table)


@registry_app.command("show")
def registry_show(
    name: str = typer.Argument(..., help="Artifact: PROJECT-TARGET."), as_json: bool = JSON
) -> None:
    """Versions of one artifact, newest first: stages, metrics, run, DVC hash."""
    versions = api.artifact_versions(name)
    if as_json:
        out.print_json(json.dumps(versions))
        return
    table = Table(
        "version",
        "stages",
        "architecture",
        "engine",
        "metrics",
        "run",
        "dvc md5",
        title=cell(name),
        title_justify="left",
    )
    for v in versions:
        record = v["record"] or {}
        metrics, artifact = _mapping(record.get("metrics")), _mapping(record.get("artifact"))
        shown = ", ".join(
            f"{k} {val:.4g}"
            for k, val in metrics.items()
            if isinstance(val, (int, float)) and not isinstance(val, bool)
        )
        table.add_row(
            cell(v["version"]),
            cell(", ".join(v["stages"]) or "-"),
            cell(record.get("architecture", "-")),
            cell(f"{record.get('engine', '-')} {record.get('precision', '')}"),
            cell(shown),
            cell(record.get("run", "-")),
            cell(artifact.get("md5", "-")),
        )
    out.print(table)


def _mapping(value: object) -> dict:
    """A record's field as a mapping; a record from an older tool may lack it or differ."""
    return value if isinstance(value, dict) else {}


@registry_app.command("history")
def registry_history(
    name: str = typer.Argument(..., help="Artifact: PROJECT-TARGET."), as_json: bool = JSON
) -> None:
    """Registrations and stage assignments of one artifact, oldest first."""
    events = api.artifact_history(name)
    if as_json:
        out.print_json(json.dumps(events))
        return
    table = Table(
        "when", "event", "version", "stage", "tag", "by", title=cell(name), title_justify="left"
    )
    for e in events:
        table.add_row(
            *(
                cell(e[key] or "-")
                for key in ("created_at", "event", "version", "stage", "tag", "author")
            )
        )
    out.print(table)


@commands.command("promote")
def promote_command(
    name: str = typer.Argument(..., help="Artifact: PROJECT-TARGET."),
    version: str = typer.Option(..., "--version", help="The version, e.g. v1.2.0."),
    stage: str = typer.Option("prod", "--stage", help="The stage to assign."),
    push: bool = PUSH,
) -> None:
    """Assign a registered version to a stage (a new NAME#STAGE#N tag) and push it.

    A promotion pushed by someone else meanwhile makes this one fail, with nothing changed.
    """
    tag = api.promote(name, version, stage, push=push)
    say(f"{name}@{version} -> {stage} ({tag})")


@commands.command("rollback")
def rollback_command(
    name: str = typer.Argument(..., help="Artifact: PROJECT-TARGET."),
    stage: str = typer.Option("prod", "--stage", help="The stage to roll back."),
    push: bool = PUSH,
) -> None:
    """Assign again the version that held STAGE before the current one.

    Recorded as a new tag; no tag is deleted or moved.
    """
    current, previous, tag = api.rollback(name, stage, push=push)
    say(f"{name}: {stage} {current} -> {previous} ({tag})")


@commands.command("pull")
def pull_command(
    reference: str = typer.Argument(..., help="NAME#STAGE, NAME@vX.Y.Z or NAME (latest)."),
    to: Path = typer.Option(..., "--to", help="New or empty folder to write the artifact to."),
) -> None:
    """Fetch a registered artifact from the DVC remote, every file verified first.

    The DVC listing and every file's sha256 are compared with the registry's record before
    anything is written; the files then move into TO at once. Nothing is written to TO when
    anything differs.
    """
    pulled = api.pull_artifact(reference, to)
    record, files = pulled["record"], pulled["files"]
    say(
        f"{pulled['name']}@{pulled['version']} ({record.get('engine', '?')} "
        f"{record.get('precision', '?')}, run {record.get('run', '?')}): {len(files)} "
        f"file(s) in {to}, sha256 verified"
    )


# ----------------------------------------------------------------------------- gitops local
@gitops_app.command("local")
def gitops_local(
    path: Path = typer.Argument(
        ..., help="Where to create the bare repository, e.g. ../forge.git."
    ),
    bench_seconds: float | None = typer.Option(
        None, "--bench-seconds", min=1, help="Time cap of each latency measurement in the runs."
    ),
) -> None:
    """Create a bare repository whose pushes run the pipeline on this host.

    A push to a branch runs the changed projects and writes each report to the
    reports/<project> branch; a push to main promotes what passed (registry tags are pushed
    into the same repository). Clone it, push, and follow with `tango gitops status PATH`.
    """
    bare = api.create_forge(path, bench_seconds=bench_seconds)
    err.print(
        f"created {bare}\n  git clone {bare} work && cd work   # add the TANGO-CI "
        "template, commit, push\n  tango gitops status " + str(bare),
        markup=False,
    )


@gitops_app.command("status")
def gitops_status(
    path: Path = typer.Argument(..., help="The bare repository."),
    wait: bool = typer.Option(False, "--wait", help="Wait until no job is queued or running."),
    as_json: bool = JSON,
) -> None:
    """Queued, running and finished work of a `tango gitops local` repository."""
    jobs = api.forge_status(path, wait=wait)
    if as_json:
        out.print_json(json.dumps(jobs))
        return
    table = Table("job", "branch", "state", "finished", "outcome", title_justify="left")
    for job in jobs:
        outcome = (
            job.get("error")
            or "; ".join(
                f"{r['project']}: "
                + (
                    ", ".join(p.get("version", "skipped") for p in r["promoted"])
                    if "promoted" in r
                    else ("pass" if r["passed"] else "fail")
                )
                for r in job["results"]
            )
            or (job["log"][-1].split(" ", 1)[1] if job["log"] else "")
        )
        cells = (job["id"], job["branch"], job["state"], job.get("finished_at", "-"), outcome)
        table.add_row(*(cell(value) for value in cells))
    out.print(table)
    say(f"log: {Path(path) / 'tango' / 'worker.log'}")
