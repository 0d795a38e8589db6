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


def collect(run_dir: RunDir) -> dict:
    """What a report branch and the registry keep of a finished run."""
    spec = read_json(run_dir.root / "spec.json")["spec"]
    decision_path = run_dir.stage_dir("gate") / "decision.json"
    if not decision_path.is_file():
        raise TangoError(f"run {run_dir.id} has no gate decision; run `tango gate` first")
    decision = read_json(decision_path)
    model = read_json(run_dir.stage_dir("train") / "model.json")
    targets = {}
    for name, verdict in decision["targets"].items():
        metrics = read_json(run_dir.stage_dir("bench") / name / "metrics.json")
        latency = metrics["latency"]
        quality = metrics["accuracy"]
        targets[name] = {
            "passed": verdict["passed"], "engine": metrics["engine"],
            "precision": metrics["precision"], "runner": metrics["runner"],
            "artifact_dir": metrics["artifact"],
            # named as gate.metric names them, so the next gate compares like with like
            "metrics": {"accuracy": quality["accuracy"],
                        **{k: quality[k] for k in ("map50", "map50_95") if k in quality},
                        **{f"{p}_ms": latency[f"{p}_ms"] for p in ("p50", "p90", "p95", "p99")},
                        "peak_rss_mb": latency.get("peak_rss_mb")},
            "failed": [c["check"] for c in verdict["checks"] if c["status"] == "fail"],
        }
    return {"project": spec["name"], "run": run_dir.id, "task": spec["task"],
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
    stored = {k: v for k, v in results.items()} | {"source_commit": source_commit}
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
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "dvc", "metrics", "diff", old[:10],
                             new[:10], "--md", "--all"], cwd=repo, capture_output=True, text=True,
                            env=dict(os.environ, DVC_NO_ANALYTICS="1", COLUMNS="1000"))
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return f"(dvc metrics diff failed: {lines[-1] if lines else 'no output'})"
    return result.stdout.strip()


def find_report(repo: Path, project: str, head: str) -> tuple[str, dict] | None:
    """The newest report of ``project`` made from a commit that ``head`` contains."""
    branch = REPORT_BRANCH.format(project=project)
    for ref in (f"refs/remotes/origin/{branch}", f"refs/heads/{branch}"):
        if rev_parse(repo, ref):
            break
    else:
        return None
    for commit in git(repo, "log", "--format=%H", ref).splitlines():
        text = show_file(repo, commit, "results.json")
        if text is None:
            continue
        results = json.loads(text)
        source = results.get("source_commit")
        if source and rev_parse(repo, source) and is_ancestor(repo, source, head):
            return commit, results
    return None


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
        before = set(git(repo, "tag", "--list").splitlines())
        version, why = registry.register(name, record, ref=head)
        registry.assign(name, version, stage, f"promote {version} to {stage}: gate passed in "
                                              f"run {results['run']}")
        tags = sorted(set(git(repo, "tag", "--list").splitlines()) - before)
        if push:
            registry.publish(name, tags)
        done.append({"name": name, "version": version, "why": why, "tags": tags})
    return done
