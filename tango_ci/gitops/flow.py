"""The GitOps steps shared by the workflows and `tango gitops local`.

1. after a run: :func:`collect` its results, :func:`store_artifacts` in the DVC remote, and
   :func:`publish_report` as a commit on the ``reports/<project>`` branch;
2. on a push to main: :func:`promote_pending` registers a version of every target that passed
   in each merged report not registered yet, and assigns it to ``prod``.

A run folder may have been downloaded from CI jobs and a report branch may hold what anyone
with push access wrote, so both are read as data (:mod:`tango_ci.registry.records`): every
JSON file size-limited and shape-checked, and every artifact file's sha256 compared with the
stage manifests that recorded it before it is stored or published.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from tango_ci.exceptions import TangoError
from tango_ci.gitops.git import (commit_files, first_parent_trees, git, is_ancestor,
                                 read_blob, ref_names, rev_parse, tree_id)
from tango_ci.registry import Registry, artifact_name
from tango_ci.registry.records import (MAX_JSON_BYTES, NAME, UntrustedDataError, check_built,
                                       check_decision, check_metrics, check_model,
                                       check_results, check_run_spec, manifest_files,
                                       parse_json, read_json_file)
from tango_ci.rundir import RunDir, file_sha256

REPORT_BRANCH = "reports/{project}"
MAX_REPORT_FILE_BYTES = 16 * 2**20  # report.md, plots and report.json of one run


class ArtifactMismatch(TangoError):
    _template = ("run {run}: {file} has sha256 {actual}, but {manifest} recorded {expected}; "
                 "the artifact was not stored or published")


def _architecture(model: dict) -> str:
    if "level" in model:
        return f"{model['family']}-{model['level']}"
    if "scale" in model:
        return f"{model['family']}{model['scale']}"
    return str(model.get("family", "unknown"))


# ----------------------------------------------------------------------------- a run folder
def _run_json(run_dir: RunDir, relative: str, check) -> dict:
    """A JSON file of the run, read as data: regular file, size-limited, strict, checked."""
    return check(read_json_file(run_dir.root / relative, f"run {run_dir.id}: {relative}"),
                 f"run {run_dir.id}: {relative}")


def _artifact_folder(run_dir: RunDir, target: str, recorded: str) -> Path:
    """The artifact folder in this copy of the run (a CI job may have measured it elsewhere):
    ``compile/<target>`` or ``compile/<target>/<candidate>``, a real folder of this run."""
    parts = Path(recorded).parts
    if "compile" not in parts:
        raise UntrustedDataError(f"run {run_dir.id}: artifact path {recorded} is not under "
                                 "compile/")
    tail = parts[len(parts) - parts[::-1].index("compile"):]
    if not 1 <= len(tail) <= 2 or tail[0] != target or not all(NAME.match(p) for p in tail):
        raise UntrustedDataError(f"run {run_dir.id}: artifact path {recorded} is not "
                                 f"compile/{target} or compile/{target}/<candidate>")
    folder = run_dir.root
    for part in ("compile", *tail):
        folder = folder / part
        if folder.is_symlink() or not folder.is_dir():
            raise UntrustedDataError(f"run {run_dir.id}: "
                                     f"{folder.relative_to(run_dir.root).as_posix()} is not a "
                                     "folder of the run (missing or a symbolic link)")
    return folder


def _recorded_hashes(run_dir: RunDir, target: str, folder: Path,
                     metrics: dict) -> dict[str, list[tuple[str, str]]]:
    """relpath in ``folder`` -> (sha256, who recorded it), from every record there is."""
    prefix = folder.relative_to(run_dir.root).as_posix() + "/"
    found: dict[str, list[tuple[str, str]]] = {}
    for stage in ("compile", "bench"):
        relative = f"{stage}/manifest.json"
        if (run_dir.root / relative).exists() or (run_dir.root / relative).is_symlink():
            files = _run_json(run_dir, relative, manifest_files)
            for path, digest in files.items():
                if path.startswith(prefix):
                    found.setdefault(path[len(prefix):], []).append((digest, relative))
    if isinstance(metrics.get("build"), dict):
        found.setdefault(metrics["build"]["file"], []).append(
            (metrics["build"]["sha256"], f"bench/{target}/metrics.json"))
    built_path = f"{prefix}artifact.json"
    if (run_dir.root / built_path).exists() or (run_dir.root / built_path).is_symlink():
        built = _run_json(run_dir, built_path, check_built)
        found.setdefault(built["file"], []).append((built["sha256"], built_path))
    return found


def verify_artifact(run_dir: RunDir, target: str, folder: Path, metrics: dict) -> dict:
    """Every file the stage records name in ``folder`` has the sha256 they recorded.

    Returns relpath -> sha256 of the recorded files; a mismatch names the file and both hashes.
    """
    from tango_ci.dvcstore import regular_files

    shown = folder.relative_to(run_dir.root).as_posix()
    present = {p.relative_to(folder).as_posix(): p
               for p in regular_files(folder, f"run {run_dir.id}: {shown}")}
    recorded = _recorded_hashes(run_dir, target, folder, metrics)
    if not recorded:
        raise UntrustedDataError(f"run {run_dir.id}: no stage manifest records a file of "
                                 f"{shown}; the artifact was not stored or published")
    verified = {}
    for relpath, records in sorted(recorded.items()):
        if relpath not in present:
            raise UntrustedDataError(f"run {run_dir.id}: {shown}/{relpath} is missing, but "
                                     f"{records[0][1]} records it; the artifact was not stored "
                                     "or published")
        actual = file_sha256(present[relpath])
        for expected, manifest in records:
            if actual != expected:
                raise ArtifactMismatch(run=run_dir.id, file=f"{shown}/{relpath}",
                                       actual=actual, manifest=manifest, expected=expected)
        verified[relpath] = actual
    return verified


def collect(run_dir: RunDir) -> dict:
    """What a report branch and the registry keep of a finished run, checked as data."""
    needed = ["spec.json", "gate/decision.json", "train/model.json"]
    missing = [run_dir.root / p for p in needed if not (run_dir.root / p).exists()]
    if missing:
        raise TangoError(f"run {run_dir.id} is not finished: {missing[0]} is missing; run "
                         "the pipeline up to the gate first")
    recorded = _run_json(run_dir, "spec.json", check_run_spec)
    spec = recorded["spec"]
    if spec["name"] != run_dir.project_runs.name:
        raise UntrustedDataError(f"run {run_dir.id}: spec.json names project '{spec['name']}',"
                                 f" but the run is in the folder of {run_dir.project_runs.name}")
    folder = f"projects/{spec['name']}"
    if isinstance(recorded.get("project_file"), str):
        project_dir = Path(recorded["project_file"]).parent
        try:
            from tango_ci.spec import find_repo_root

            folder = project_dir.relative_to(find_repo_root(project_dir)).as_posix()
        except (TangoError, ValueError, OSError):
            pass
    decision = _run_json(run_dir, "gate/decision.json", check_decision)
    model = _run_json(run_dir, "train/model.json", check_model)
    known = {t["name"] for t in spec.get("targets") or []}
    targets = {}
    for name, verdict in decision["targets"].items():
        if known and name not in known:
            raise UntrustedDataError(f"run {run_dir.id}: gate/decision.json judges target "
                                     f"{name}, which spec.json does not have")
        if not (run_dir.stage_dir("bench") / name / "metrics.json").exists():
            raise TangoError(f"run {run_dir.id}: target {name} was not measured "
                             f"({run_dir.stage_dir('bench') / name / 'metrics.json'} is "
                             "missing)")
        metrics = _run_json(run_dir, f"bench/{name}/metrics.json", check_metrics)
        artifact_dir = _artifact_folder(run_dir, name, metrics["artifact"])
        latency, quality = metrics["latency"], metrics["accuracy"]
        targets[name] = {
            "passed": verdict["passed"], "engine": metrics["engine"],
            "precision": metrics["precision"], "runner": metrics["runner"],
            "artifact_dir": str(artifact_dir),
            "artifact_files": verify_artifact(run_dir, name, artifact_dir, metrics),
            # named as gate.metric names them, so the next gate compares like with like
            "metrics": {"accuracy": quality["accuracy"],
                        **{k: quality[k] for k in ("map50", "map50_95") if k in quality},
                        **{f"{p}_ms": latency[f"{p}_ms"] for p in ("p50", "p90", "p95", "p99")},
                        "peak_rss_mb": latency.get("peak_rss_mb")},
            "failed": [c["check"] for c in verdict["checks"] if c["status"] == "fail"],
        }
    _report_files(run_dir)  # refused now, before the artifacts are stored, not after
    return {"project": spec["name"], "path": folder, "run": run_dir.id, "task": spec["task"],
            "classes": model.get("classes"), "architecture": _architecture(model),
            "passed": decision["passed"], "targets": targets}


def store_artifacts(results: dict, remote_url: str) -> dict:
    """Push every target's artifact to the DVC remote; adds its record to ``results``.

    What is pushed is compared once more with the hashes :func:`collect` verified.
    """
    from tango_ci.dvcstore import push_dir

    for name, target in sorted(results["targets"].items()):
        stored = push_dir(Path(target["artifact_dir"]), remote_url)
        for relpath, expected in sorted((target.get("artifact_files") or {}).items()):
            actual = stored["files"].get(relpath, "(missing)")
            if actual != expected:
                raise ArtifactMismatch(run=results["run"], file=f"compile/{name}/{relpath}",
                                       actual=actual, manifest="the verified run",
                                       expected=expected)
        target["artifact"] = stored
    return results


def _report_files(run_dir: RunDir) -> dict[str, bytes]:
    """report.md, the plots and report.json of the run: regular files, size-limited."""
    files: dict[str, bytes] = {}
    report = run_dir.stage_dir("report")
    if report.is_symlink():
        raise UntrustedDataError(f"run {run_dir.id}: report is a symbolic link; it was not "
                                 "followed")
    for path in sorted(report.glob("*")):
        if not (path.suffix in (".md", ".png") or path.name == "report.json"):
            continue
        what = f"run {run_dir.id}: report/{path.name}"
        if path.is_symlink() or not path.is_file():
            raise UntrustedDataError(f"{what} is a symbolic link or not a file; it was not "
                                     "published")
        if path.stat().st_size > MAX_REPORT_FILE_BYTES:
            raise UntrustedDataError(f"{what} is {path.stat().st_size} bytes, more than the "
                                     f"{MAX_REPORT_FILE_BYTES} allowed; it was not published")
        if path.name == "report.json":
            read_json_file(path, what, MAX_JSON_BYTES)
        files[path.name] = path.read_bytes()
    return files


def publish_report(repo: Path, results: dict, run_dir: RunDir, source_commit: str) -> str:
    """Commit the run's report, plots and metrics to ``reports/<project>``; returns the commit."""
    files = _report_files(run_dir)
    stored = dict(results) | {"source_commit": source_commit}
    files["results.json"] = (json.dumps(stored, indent=2) + "\n").encode()
    metrics = {name: t["metrics"] for name, t in results["targets"].items()}
    files["metrics.json"] = (json.dumps(metrics, indent=2) + "\n").encode()
    files["dvc.yaml"] = b"metrics:\n  - metrics.json\n"  # so `dvc metrics diff` reads it
    verdict = "pass" if results["passed"] else "fail"
    message = (f"report {results['project']} run {results['run']}: gate {verdict}\n\n"
               f"source commit {source_commit}\n")
    branch = REPORT_BRANCH.format(project=results["project"])
    commit = commit_files(repo, branch, files, message)
    baseline = production_report(repo, results)
    if baseline and "report.md" in files:  # the same commit, with the diff in its report
        diff = metrics_diff(repo, baseline[1], commit)
        files["report.md"] += (f"\n## Against production ({baseline[0]})\n\n"
                               f"`dvc metrics diff {baseline[1][:10]} {commit[:10]}`:\n\n"
                               f"{diff}\n").encode()
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


def push_report(repo: Path, results: dict, run_dir: RunDir, source_commit: str,
                attempts: int = 3) -> str:
    """Publish and push the report; when another report was pushed meanwhile, rebuild on it."""
    branch = REPORT_BRANCH.format(project=results["project"])
    for attempt in range(attempts):
        commit = publish_report(repo, results, run_dir, source_commit)
        refspec = f"refs/heads/{branch}"
        git(repo, "push", "--quiet", "origin", f"{refspec}:{refspec}", check=False)
        if git(repo, "ls-remote", "origin", refspec, check=False).startswith(commit):
            return commit
        git(repo, "fetch", "--quiet", "origin", f"+{refspec}:refs/remotes/origin/{branch}",
            check=False)
        git(repo, "update-ref", "-d", f"refs/heads/{branch}")  # rebuild on origin's tip
    raise TangoError(f"could not push {branch} after {attempts} attempts (another report was "
                     "pushed each time, or origin refuses pushes)")


# ----------------------------------------------------------------------------- reports
def _report_refs(repo: Path, project: str) -> list[str]:
    branch = REPORT_BRANCH.format(project=project)
    return [ref for ref in (f"refs/remotes/origin/{branch}", f"refs/heads/{branch}")
            if rev_parse(repo, ref)]


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


def find_report(repo: Path, project: str, head: str, base: str | None = None
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


# ----------------------------------------------------------------------------- promotion
def _registered(registry: Registry, name: str, run: str, report_commit: str) -> bool:
    if name not in registry.names():
        return False
    return any(isinstance(v["record"], dict) and (v["record"].get("run") == run or
                                                  v["record"].get("report_commit") ==
                                                  report_commit)
               for v in registry.versions(name))


def promote_results(repo: Path, results: dict, head: str, report_commit: str, *,
                    stage: str = "prod", push: bool = True,
                    registry: Registry | None = None) -> list[dict]:
    """Register a version of each passing target at ``head`` and assign it to ``stage``.

    A target whose run (or report) is registered already is left out: promoting is
    idempotent.
    """
    if registry is None:
        registry = Registry(repo)
        registry.fetch()
    done = []
    for target, entry in sorted(results["targets"].items()):
        name = artifact_name(results["project"], target)
        if not entry["passed"] or "artifact" not in entry:
            done.append({"name": name, "skipped":
                         "gate failed" if not entry["passed"] else "artifact not stored"})
            continue
        if _registered(registry, name, results["run"], report_commit):
            continue
        record = {"project": results["project"], "target": target, "run": results["run"],
                  "task": results["task"], "classes": results["classes"],
                  "architecture": results["architecture"], "engine": entry["engine"],
                  "precision": entry["precision"], "runner": entry["runner"],
                  "metrics": entry["metrics"], "artifact": entry["artifact"],
                  "report_commit": report_commit}
        version, why = registry.register(name, record, ref=head)
        stage_tag = registry.assign(name, version, stage, f"promote {version} to {stage}: gate "
                                                          f"passed in run {results['run']}")
        tags = sorted([f"{name}@{version}", stage_tag])
        if push:
            registry.publish(name, tags)
        done.append({"name": name, "version": version, "why": why, "tags": tags})
    return done


def report_projects(repo: Path) -> list[str]:
    """Projects with a report branch, here or on origin."""
    names = set()
    for ref in ref_names(repo, "refs/remotes/origin/reports/", "refs/heads/reports/"):
        project = ref.split("/reports/", 1)[1]
        if NAME.match(project):
            names.add(project)
    return sorted(names)


def promote_pending(repo: Path, head: str, *, base: str | None = None, stage: str = "prod",
                    push: bool = True) -> list[dict]:
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
    trees = first_parent_trees(repo, head_commit)
    outcome = []
    for project in report_projects(repo):
        merged = next(((commit, results) for commit, results in reports(repo, project)
                       if is_merged(repo, results, head_commit, trees)), None)
        if merged is None:
            continue
        commit, results = merged
        folder = results.get("path") or f"projects/{project}"
        if not tree_id(repo, head_commit, f"{folder}/project.yaml"):
            continue  # the project was removed from main
        news = base is None or not is_ancestor(repo, results["source_commit"], base)
        done = promote_results(repo, results, head_commit, commit, stage=stage, push=push,
                               registry=registry)
        if any("version" in item for item in done) or (news and done):
            outcome.append({"project": project, "report": commit, "run": results["run"],
                            "passed": results["passed"], "promoted": done})
    return outcome
