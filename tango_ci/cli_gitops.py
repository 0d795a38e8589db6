"""The GitOps commands of `tango`: ci, registry, promote, rollback, pull, gitops, runner check.

Registered on the main app by tango_ci.cli; each command calls the library and prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from tango_ci.cli import app, err, out, runner_app
from tango_ci.exceptions import TangoError
from tango_ci.spec import find_repo_root

ci_app = typer.Typer(no_args_is_help=True, help="The steps the workflows run (plan, publish, "
                                                "promote); see .github/workflows/.")
registry_app = typer.Typer(no_args_is_help=True, help="The model registry: git tags in GTO's "
                                                      "formats (NAME@vX.Y.Z, NAME#prod#N).")
gitops_app = typer.Typer(no_args_is_help=True, help="GitOps on one machine without a forge: "
                                                    "a bare repository whose pushes run work.")
app.add_typer(ci_app, name="ci")
app.add_typer(registry_app, name="registry")
app.add_typer(gitops_app, name="gitops")

_JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")
_PUSH = typer.Option(True, "--push/--no-push", help="Push the new tags to origin (when the "
                                                     "repository has one).")


def _root() -> Path:
    return find_repo_root(Path.cwd())


# ----------------------------------------------------------------------------- runner check
@runner_app.command("check")
def runner_check(path: Path = typer.Argument(..., help="runners/<device>.yaml to compare "
                                                        "with this host.")) -> None:
    """Compare a runner file with this host; exit 1 on a mismatch.

    Checks the architecture, the accelerator, and each engine: importable, of the declared
    version, with its execution providers. A mislabelled runner would produce benchmark
    numbers for a device it is not; the compile-bench job runs this first.
    """
    from tango_ci.runners.check import check_runner
    from tango_ci.spec import load_runner

    findings = check_runner(load_runner(path))
    style = {"ok": "green", "warning": "yellow", "error": "red"}
    for finding in findings:
        err.print(f"[{style[finding.level]}]{finding.level:>7}[/] {finding.what}: "
                  f"{finding.message}", highlight=False)
    errors = [f for f in findings if f.level == "error"]
    if errors:
        raise TangoError(f"{path}: this host does not match the runner file "
                         f"({len(errors)} mismatch(es): {', '.join(f.what for f in errors)})")
    err.print(f"{path}: this host matches")


# ----------------------------------------------------------------------------- ci
@ci_app.command("plan")
def ci_plan(
    base: Optional[str] = typer.Option(None, "--base", help="Base revision (the pull "
                                       "request's base; compared from its merge base)."),
    head: str = typer.Option("HEAD", "--head", help="Head revision (checked out)."),
    everything: bool = typer.Option(False, "--all", help="Plan every project."),
    project: Optional[list[str]] = typer.Option(None, "--project", "-p",
                                                help="Plan this project (repeatable)."),
    as_json: bool = _JSON,
) -> None:
    """Which projects and targets a change needs to run.

    A project is planned when its project.yaml, a DVC pointer (*.dvc) of its data, or a
    runner file it uses changed between BASE and HEAD. Writes the matrices to
    $GITHUB_OUTPUT (projects, targets, any) when that is set.
    """
    from tango_ci.gitops.plan import make_plan, write_github_output

    if base is None and not everything and not project:
        raise TangoError("give --base REV, --all or --project NAME")
    plan = make_plan(_root(), base, head, everything=everything, only=tuple(project or ()))
    written = write_github_output(plan)
    if as_json:
        out.print_json(json.dumps(plan.to_dict()))
        return
    if not plan.projects:
        err.print("nothing to run: no project file, data pointer or used runner file changed")
    for entry in plan.projects:
        err.print(f"[bold]{entry['project']}[/]: {'; '.join(plan.reasons[entry['project']])}; "
                  f"train on {entry['runner']} {entry['runs-on']}")
        for target in (t for t in plan.targets if t["project"] == entry["project"]):
            err.print(f"  target {target['target']} on {target['runner']} {target['runs-on']}")
    if written:
        err.print(f"matrices written to {written}")


@ci_app.command("publish")
def ci_publish(
    project: Path = typer.Argument(..., help="The project folder."),
    run_id: Optional[str] = typer.Option(None, "--run", help="Run id (default: latest)."),
    source: str = typer.Option("HEAD", "--source", help="The commit the run was made from."),
    push: bool = _PUSH,
) -> None:
    """Store a run's artifacts in DVC and commit its report to reports/<project>.

    The report commit holds report.md, the plots, results.json (per target: verdict, metrics,
    DVC hash of the artifact) and metrics.json with a dvc.yaml, so `dvc metrics diff` works
    between reports. Promotion reads it.
    """
    from tango_ci.dvcstore import remote_url
    from tango_ci.gitops.flow import collect, publish_report, push_report, store_artifacts
    from tango_ci.gitops.git import has_remote, rev_parse
    from tango_ci.registry.records import NAME
    from tango_ci.rundir import find_run, runs_root
    from tango_ci.spec import load_project

    if run_id is not None and not NAME.match(run_id):
        raise TangoError(f"--run '{run_id}' is not a run id (letters, digits, '.', '_', '-')")
    root = _root()
    spec = load_project(project)
    run_dir = find_run(runs_root(root), spec.name, run_id)
    results = store_artifacts(collect(run_dir), remote_url(root))
    source_commit = rev_parse(root, source) or source
    if push and has_remote(root):
        commit = push_report(root, results, run_dir, source_commit)
    else:
        commit = publish_report(root, results, run_dir, source_commit)
    branch = f"reports/{spec.name}"
    err.print(f"report {commit[:10]} on {branch}; gate "
              f"{'pass' if results['passed'] else 'fail'}")


@ci_app.command("promote")
def ci_promote(
    base: Optional[str] = typer.Option(None, "--base", help="main before the push (its "
                                       "reports' failed gates are told)."),
    head: str = typer.Option("HEAD", "--head", help="main after the push."),
    push: bool = _PUSH,
) -> None:
    """Register and promote to prod what passed, after a push to main.

    For each project, takes the newest report on reports/<project> made from a commit HEAD
    contains (with the project folder as in HEAD); every target of it that passed its gate
    and is not registered yet gets a new version (at HEAD) assigned to prod. So a promotion
    that failed is made by the next push, and running it twice promotes nothing more.
    """
    from tango_ci.gitops.flow import promote_pending

    done = promote_pending(_root(), head, base=base, push=push)
    if not done:
        err.print("nothing to promote: every merged report is registered already")
    for entry in done:
        for item in entry["promoted"]:
            if "skipped" in item:
                err.print(f"{item['name']}: skipped ({item['skipped']})")
            else:
                err.print(f"{item['name']}: {item['version']} ({item['why']}) -> prod")


# ----------------------------------------------------------------------------- registry
@registry_app.command("ls")
def registry_ls(as_json: bool = _JSON) -> None:
    """Every artifact with its latest version and the version in each stage (as `gto show`)."""
    from tango_ci.registry import Registry

    rows = Registry(_root()).overview()
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("name", "latest", "stages", title_justify="left")
    for row in rows:
        table.add_row(row["name"], row["latest"] or "-",
                      ", ".join(f"{s}: {v}" for s, v in row["stages"].items()) or "-")
    out.print(table)


@registry_app.command("show")
def registry_show(name: str = typer.Argument(..., help="Artifact: PROJECT-TARGET."),
                  as_json: bool = _JSON) -> None:
    """Versions of one artifact, newest first: stages, metrics, run, DVC hash."""
    from tango_ci.registry import Registry

    versions = Registry(_root()).versions(name)
    if as_json:
        out.print_json(json.dumps(versions))
        return
    table = Table("version", "stages", "architecture", "engine", "metrics", "run", "dvc md5",
                  title=name, title_justify="left")
    for v in versions:
        record = v["record"] or {}
        metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else {}
        shown = ", ".join(f"{k} {val:.4g}" for k, val in metrics.items()
                          if isinstance(val, (int, float)) and not isinstance(val, bool))
        artifact = record.get("artifact") if isinstance(record.get("artifact"), dict) else {}
        table.add_row(v["version"], ", ".join(v["stages"]) or "-",
                      str(record.get("architecture", "-")),
                      f"{record.get('engine', '-')} {record.get('precision', '')}", shown,
                      str(record.get("run", "-")), str(artifact.get("md5", "-")))
    out.print(table)


@registry_app.command("history")
def registry_history(name: str = typer.Argument(..., help="Artifact: PROJECT-TARGET."),
                     as_json: bool = _JSON) -> None:
    """Registrations and stage assignments of one artifact, oldest first."""
    from tango_ci.registry import Registry

    events = Registry(_root()).history(name)
    if as_json:
        out.print_json(json.dumps(events))
        return
    table = Table("when", "event", "version", "stage", "tag", "by", title=name,
                  title_justify="left")
    for e in events:
        table.add_row(e["created_at"], e["event"], e["version"], e["stage"] or "-",
                      e["tag"] or "-", e["author"] or "-")
    out.print(table)


@app.command("promote")
def promote_command(
    name: str = typer.Argument(..., help="Artifact: PROJECT-TARGET."),
    version: str = typer.Option(..., "--version", help="The version, e.g. v1.2.0."),
    stage: str = typer.Option("prod", "--stage", help="The stage to assign."),
    push: bool = _PUSH,
) -> None:
    """Assign a registered version to a stage (a new NAME#STAGE#N tag) and push it.

    A promotion pushed by someone else meanwhile makes this one fail, with nothing changed.
    """
    from tango_ci.registry import Registry

    tag = Registry(_root()).promote(name, version, stage, push=push)
    err.print(f"{name}@{version} -> {stage} ({tag})")


@app.command("rollback")
def rollback_command(
    name: str = typer.Argument(..., help="Artifact: PROJECT-TARGET."),
    stage: str = typer.Option("prod", "--stage", help="The stage to roll back."),
    push: bool = _PUSH,
) -> None:
    """Assign again the version that held STAGE before the current one.

    Recorded as a new tag; no tag is deleted or moved.
    """
    from tango_ci.registry import Registry

    current, previous, tag = Registry(_root()).rollback(name, stage, push=push)
    err.print(f"{name}: {stage} {current} -> {previous} ({tag})")


@app.command("pull")
def pull_command(
    reference: str = typer.Argument(..., help="NAME#STAGE, NAME@vX.Y.Z or NAME (latest)."),
    to: Path = typer.Option(..., "--to", help="New or empty folder to write the artifact to."),
) -> None:
    """Fetch a registered artifact from the DVC remote, every file verified first.

    The DVC listing and every file's sha256 are compared with the registry's record before
    anything is written; the files then move into TO at once. Nothing is written to TO when
    anything differs.
    """
    from tango_ci.dvcstore import pull_dir
    from tango_ci.registry import Registry
    from tango_ci.registry.records import check_record

    entry = Registry(_root()).resolve(reference)
    name = f"{entry['name']}@{entry['version']}"
    record = check_record(entry["record"], f"{name}: the record in its tag", artifact=True)
    files = pull_dir(record["artifact"], to, name=name)
    err.print(f"{entry['name']}@{entry['version']} ({record.get('engine', '?')} "
              f"{record.get('precision', '?')}, run {record.get('run', '?')}): {len(files)} "
              f"file(s) in {to}, sha256 verified")


# ----------------------------------------------------------------------------- gitops local
@gitops_app.command("local")
def gitops_local(path: Path = typer.Argument(..., help="Where to create the bare "
                                                        "repository, e.g. ../forge.git."),
                 bench_seconds: Optional[float] = typer.Option(
                     None, "--bench-seconds", min=1,
                     help="Time cap of each latency measurement in the runs.")) -> None:
    """Create a bare repository whose pushes run the pipeline on this host.

    A push to a branch runs the changed projects and writes each report to the
    reports/<project> branch; a push to main promotes what passed (registry tags are pushed
    into the same repository). Clone it, push, and follow with `tango gitops status PATH`.
    """
    from tango_ci.gitops.local import create

    bare = create(path, run_args=("--bench-seconds", str(bench_seconds)) if bench_seconds
                  else ())
    err.print(f"created {bare}\n  git clone {bare} work && cd work   # add the TANGO-CI "
              "template, commit, push\n  tango gitops status " + str(bare))


@gitops_app.command("status")
def gitops_status(path: Path = typer.Argument(..., help="The bare repository."),
                  wait: bool = typer.Option(False, "--wait", help="Wait until no job is "
                                            "queued or running."),
                  as_json: bool = _JSON) -> None:
    """Queued, running and finished work of a `tango gitops local` repository."""
    from tango_ci.gitops import local

    jobs = local.wait(path) if wait else local.status(path)
    if as_json:
        out.print_json(json.dumps(jobs))
        return
    table = Table("job", "branch", "state", "finished", "outcome", title_justify="left")
    for job in jobs:
        outcome = job.get("error") or "; ".join(
            f"{r['project']}: " + (", ".join(p.get("version", "skipped") for p in r["promoted"])
                                   if "promoted" in r else ("pass" if r["passed"] else "fail"))
            for r in job["results"]) or (job["log"][-1].split(" ", 1)[1] if job["log"] else "")
        table.add_row(job["id"], job["branch"], job["state"], job.get("finished_at", "-"),
                      outcome)
    out.print(table)
    err.print(f"log: {Path(path) / 'tango' / 'worker.log'}")
