"""The GitOps steps shared by the workflows and `tango gitops local`.

1. after a run: :func:`collect` its results, :func:`store_artifacts` in the DVC remote, and
   :func:`publish_report` as a commit on the ``reports/<project>`` branch;
2. on a merge to main: :func:`promote_merged` finds each changed project's report, registers
   a version of every target that passed its gate and assigns it to ``prod``.
"""

from __future__ import annotations

import json
from pathlib import Path

from tango_ci.exceptions import TangoError
from tango_ci.gitops.git import commit_files, git, is_ancestor, rev_parse, show_file
from tango_ci.registry import Registry, artifact_name
from tango_ci.rundir import RunDir, read_json

REPORT_BRANCH = "reports/{project}"


def _architecture(model: dict) -> str:
    if "level" in model:
        return f"{model['family']}-{model['level']}"
    if "scale" in model:
        return f"{model['family']}{model['scale']}"
    return str(model.get("family", "unknown"))


def _local_artifact(run_dir: RunDir, recorded: str) -> Path:
    """The artifact folder in this copy of the run (a CI job may have measured it elsewhere)."""
    parts = Path(recorded).parts
    if "compile" not in parts:
        raise TangoError(f"run {run_dir.id}: artifact path {recorded} is not under compile/")
    index = len(parts) - 1 - parts[::-1].index("compile")
    return run_dir.root.joinpath(*parts[index:])


def collect(run_dir: RunDir) -> dict:
    """What a report branch and the registry keep of a finished run."""
    needed = [run_dir.root / "spec.json", run_dir.stage_dir("gate") / "decision.json",
              run_dir.stage_dir("train") / "model.json"]
    missing = [p for p in needed if not p.is_file()]
    if missing:
        raise TangoError(f"run {run_dir.id} is not finished: {missing[0]} is missing; run "
                         "the pipeline up to the gate first")
    recorded = read_json(needed[0])
    spec = recorded["spec"]
    project_dir = Path(recorded["project_file"]).parent
    try:
        from tango_ci.spec import find_repo_root

        folder = project_dir.relative_to(find_repo_root(project_dir)).as_posix()
    except (TangoError, ValueError):
        folder = f"projects/{spec['name']}"
    decision = read_json(needed[1])
    model = read_json(needed[2])
    targets = {}
    for name, verdict in decision["targets"].items():
        metrics_path = run_dir.stage_dir("bench") / name / "metrics.json"
        if not metrics_path.is_file():
            raise TangoError(f"run {run_dir.id}: target {name} was not measured "
                             f"({metrics_path} is missing)")
        metrics = read_json(metrics_path)
        latency = metrics["latency"]
        quality = metrics["accuracy"]
        targets[name] = {
            "passed": verdict["passed"], "engine": metrics["engine"],
            "precision": metrics["precision"], "runner": metrics["runner"],
            "artifact_dir": str(_local_artifact(run_dir, metrics["artifact"])),
            # named as gate.metric names them, so the next gate compares like with like
            "metrics": {"accuracy": quality["accuracy"],
                        **{k: quality[k] for k in ("map50", "map50_95") if k in quality},
                        **{f"{p}_ms": latency[f"{p}_ms"] for p in ("p50", "p90", "p95", "p99")},
                        "peak_rss_mb": latency.get("peak_rss_mb")},
            "failed": [c["check"] for c in verdict["checks"] if c["status"] == "fail"],
        }
    return {"project": spec["name"], "path": folder, "run": run_dir.id, "task": spec["task"],
            "classes": model.get("classes"), "architecture": _architecture(model),
            "passed": decision["passed"], "targets": targets}


def store_artifacts(results: dict, remote_url: str) -> dict:
    """Push every target's artifact to the DVC remote; adds its record to ``results``."""
    from tango_ci.dvcstore import push_dir

    for target in results["targets"].values():
        target["artifact"] = push_dir(Path(target["artifact_dir"]), remote_url)
    return results


def publish_report(repo: Path, results: dict, run_dir: RunDir, source_commit: str) -> str:
    """Commit the run's report, plots and metrics to ``reports/<project>``; returns the commit."""
    report = run_dir.stage_dir("report")
    files: dict[str, bytes] = {}
    for path in sorted(report.glob("*")):
        if path.suffix in (".md", ".png") or path.name == "report.json":
            files[path.name] = path.read_bytes()
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
        if commit and rev_parse(repo, commit):
            return f"{entry['name']}@{entry['version']}", commit
    return None


def metrics_diff(repo: Path, old: str, new: str) -> str:
    """`dvc metrics diff` of two report commits, as a Markdown table."""
    from tango_ci.dvcstore import run_dvc

    try:
        return run_dvc(repo, "metrics", "diff", old[:10], new[:10], "--md", "--all").strip()
    except TangoError as error:  # the report is still worth publishing without it
        return f"({error})"


def find_report(repo: Path, project: str, head: str, base: str | None = None
                ) -> tuple[str, dict] | None:
    """The newest report of ``project`` made from a commit of this push: its source is in
    ``head`` but not in ``base``, or (squash and rebase merges) its project folder is the
    same tree as in ``head``."""
    branch = REPORT_BRANCH.format(project=project)
    for ref in (f"refs/remotes/origin/{branch}", f"refs/heads/{branch}"):
        if rev_parse(repo, ref):
            break
    else:
        return None
    base = base if base and rev_parse(repo, base) else None
    for commit in git(repo, "log", "--format=%H", ref).splitlines():
        try:
            results = json.loads(show_file(repo, commit, "results.json") or "null")
        except json.JSONDecodeError:
            continue
        source = (results or {}).get("source_commit")
        if not source or not rev_parse(repo, source):
            continue
        if base and is_ancestor(repo, source, base):
            continue  # made from what main already had: an earlier push's report
        if is_ancestor(repo, source, head) or _same_project(repo, results, source, head):
            return commit, results
    return None


def _same_project(repo: Path, results: dict, source: str, head: str) -> bool:
    folder = results.get("path") or f"projects/{results['project']}"
    here = git(repo, "rev-parse", f"{head}:{folder}", check=False)
    there = git(repo, "rev-parse", f"{source}:{folder}", check=False)
    return bool(here) and here == there


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


def promote_results(repo: Path, results: dict, head: str, report_commit: str, *,
                    stage: str = "prod", push: bool = True) -> list[dict]:
    """Register a version of each passing target at ``head`` and assign it to ``stage``."""
    registry = Registry(repo)
    registry.fetch()
    done = []
    for target, entry in sorted(results["targets"].items()):
        if not entry["passed"] or "artifact" not in entry:
            done.append({"name": artifact_name(results["project"], target), "skipped":
                         "gate failed" if not entry["passed"] else "artifact not stored"})
            continue
        name = artifact_name(results["project"], target)
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
