"""`tango gitops local` end to end: push a project on a branch, get its report; merge to main,
get the registry tags; pull the promoted artifact. Real git, hooks, DVC, GTO and pipeline."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tango_ci.gitops import local
from tango_ci.rundir import file_sha256, read_json
from tests.conftest import git
from tests.pipeline_helpers import TINY, copy_template

pytestmark = pytest.mark.slow

PROJECT = (
    TINY.format(per_class=8, trials=1, search_epochs=1, epochs=1, latency=1000, extra_targets="")
    .replace("name: tiny", "name: shapes")
    .replace("  patience: 50\n", "  patience: 50\n  runner: local-cpu\n")
)


def tango(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tango_ci", *args], cwd=cwd, capture_output=True, text=True
    )


def test_push_report_merge_promote_pull(tmp_path: Path) -> None:
    bare = tmp_path / "forge.git"
    created = tango(tmp_path, "gitops", "local", str(bare), "--bench-seconds", "1")
    assert created.returncode == 0, created.stderr
    assert (bare / "hooks" / "post-receive").stat().st_mode & 0o111

    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(bare), str(work))
    copy_template(work)
    identity = ["-c", "user.name=dev", "-c", "user.email=dev@example.com"]
    git(work, "add", "-A")
    git(work, *identity, "commit", "-qm", "TANGO-CI template")
    pushed = subprocess.run(
        ["git", "push", "-u", "origin", "main"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "tango-ci: queued" in pushed.stderr  # the hook answered at once

    git(work, "checkout", "-qb", "add-shapes")
    (work / "projects" / "shapes").mkdir(parents=True)
    (work / "projects" / "shapes" / "project.yaml").write_text(PROJECT)
    git(work, "add", "-A")
    git(work, *identity, "commit", "-qm", "Add the shapes project")
    branch_head = git(work, "rev-parse", "HEAD").strip()
    git(work, "push", "-q", "origin", "add-shapes")

    jobs = local.wait(bare, timeout=900)
    assert [j["state"] for j in jobs] == ["done", "done"], [j.get("error") for j in jobs]
    assert jobs[0]["results"] == []  # the template alone plans nothing
    report_job = jobs[1]
    assert report_job["kind"] == "report" and report_job["results"][0]["passed"] is True

    # the report branch holds the run's own numbers
    git(work, "fetch", "-q", "origin")
    results = json.loads(git(work, "show", "origin/reports/shapes:results.json"))
    assert results["source_commit"] == branch_head
    run_root = bare / "tango" / "runs" / report_job["id"] / "shapes" / results["run"]
    measured = read_json(run_root / "bench" / "cpu-fp32" / "metrics.json")
    metrics = json.loads(git(work, "show", "origin/reports/shapes:metrics.json"))
    assert metrics["cpu-fp32"]["p95_ms"] == measured["latency"]["p95_ms"]
    assert metrics["cpu-fp32"]["accuracy"] == measured["quality"]["value"]
    report = git(work, "show", "origin/reports/shapes:report.md")
    assert f"{measured['latency']['p95_ms']:.3g}" in report

    # merge to main: version and stage tags
    git(work, "checkout", "-q", "main")
    git(work, *identity, "merge", "-q", "--no-ff", "add-shapes", "-m", "Merge add-shapes")
    git(work, "push", "-q", "origin", "main")
    jobs = local.wait(bare, timeout=600)
    assert jobs[-1]["state"] == "done", jobs[-1].get("error")
    promoted = jobs[-1]["results"][0]["promoted"]
    assert promoted == [
        {
            "name": "shapes-cpu-fp32",
            "version": "v1.0.0",
            "why": "first version",
            "tags": ["shapes-cpu-fp32#prod#1", "shapes-cpu-fp32@v1.0.0"],
        }
    ]
    git(work, "fetch", "-q", "origin", "--tags")
    main_head = git(work, "rev-parse", "main").strip()
    assert git(work, "rev-list", "-n1", "shapes-cpu-fp32@v1.0.0").strip() == main_head

    gto = subprocess.run(
        [str(Path(sys.executable).parent / "gto"), "show", "--json"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    )
    ours = json.loads(tango(work, "registry", "ls", "--json").stdout)
    theirs = json.loads(gto.stdout)
    assert (
        {r["name"]: (r["latest"], r["stages"]) for r in ours}
        == {n: (v["version"], v["stage"]) for n, v in theirs.items()}
        == {"shapes-cpu-fp32": ("v1.0.0", {"prod": "v1.0.0"})}
    )

    # a device fetches exactly the promoted artifact
    pulled = tango(work, "pull", "shapes-cpu-fp32#prod", "--to", str(tmp_path / "device"))
    assert pulled.returncode == 0, pulled.stderr
    compiled = Path(measured["artifact"])
    for path in compiled.rglob("*"):
        if path.is_file():
            copy = tmp_path / "device" / path.relative_to(compiled)
            assert file_sha256(copy) == file_sha256(path)

    # a retrain of the same architecture: its report holds `dvc metrics diff` against
    # production, and its merge makes a patch version
    git(work, "checkout", "-qb", "retrain")
    spec = work / "projects" / "shapes" / "project.yaml"
    spec.write_text(spec.read_text().replace("train:\n  epochs: 1\n", "train:\n  epochs: 2\n"))
    git(work, *identity, "commit", "-qam", "Train longer")
    git(work, "push", "-q", "origin", "retrain")
    assert local.wait(bare, timeout=900)[-1]["state"] == "done"
    git(work, "fetch", "-q", "origin")
    report = git(work, "show", "origin/reports/shapes:report.md")
    assert "## Against production (shapes-cpu-fp32@v1.0.0)" in report
    assert re.search(r"\| metrics.json \| cpu-fp32.accuracy +\|", report)
    git(work, "checkout", "-q", "main")
    git(work, *identity, "merge", "-q", "--no-ff", "retrain", "-m", "Merge retrain")
    git(work, "push", "-q", "origin", "main")
    jobs = local.wait(bare, timeout=600)
    assert jobs[-1]["state"] == "done", jobs[-1].get("error")
    second = jobs[-1]["results"][0]["promoted"][0]
    assert (second["version"], second["why"]) == (
        "v1.0.1",
        "retrain of the same architecture (patch)",
    )

    status = tango(work, "gitops", "status", str(bare))
    assert status.returncode == 0 and "v1.0.1" in status.stdout
    assert [j["state"] for j in jobs] == ["done"] * 5
