"""A supernet project through the pipeline workflow's jobs: the supernet is trained once in
search-train, and each compile-bench job (a fresh clone with its own copy of the run)
specialises its own target before compiling and measuring it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.gitops.test_workflow_steps import plan, push_branch, run_step, steps, template, upload
from tests.gitops.test_workflow_steps import workspace as fresh_workspace
from tests.supernet.helpers import SUPERNET

pytestmark = pytest.mark.slow


def test_supernet_training_and_specialisation_are_separate_jobs(tmp_path: Path) -> None:
    origin, dev, base = template(tmp_path)
    project = SUPERNET.format(
        per_class=8, epochs=1, family="ofa-resnet", runner="local-cpu", small_mb=0.2
    )
    head = push_branch(dev, "add-tiny", {"projects/tiny/project.yaml": project})
    store = tmp_path / "artifacts"
    planned = plan(origin, tmp_path / "plan", base, head)
    targets = json.loads(planned["targets"])["include"]
    assert [t["target"] for t in targets] == ["roomy", "small"]

    job = steps("pipeline.yml", "search-train")
    work = fresh_workspace(origin, tmp_path / "st", head)
    env = {"PROJECT_PATH": "projects/tiny", "PROJECT": "tiny"}
    run_step(job["Data, search, train, export"], work, env)
    run = next(p for p in (work / "pr" / "runs" / "tiny").iterdir() if p.is_dir())
    assert (run / "train" / "model.json").is_file()
    assert not (run / "specialise").exists()  # nothing specialised on the training runner
    upload(next(s for n, s in job.items() if "upload-artifact" in n), work, store, env)

    job = steps("pipeline.yml", "compile-bench")
    for entry in targets:
        work = fresh_workspace(origin, tmp_path / f"cb-{entry['target']}", head)
        shutil.copytree(store / "run_tiny", work / "pr" / "runs" / "tiny")
        env = {
            "PROJECT_PATH": entry["path"],
            "PROJECT": "tiny",
            "TARGET": entry["target"],
            "RUNNER": entry["runner"],
        }
        run_step(job["Specialise, compile and measure"], work, env)
        run = next(p for p in (work / "pr" / "runs" / "tiny").iterdir() if p.is_dir())
        mine = run / "specialise" / entry["target"]
        assert (mine / "model.onnx").is_file()
        others = [p.name for p in (run / "specialise").iterdir() if p.is_dir()]
        assert others == [entry["target"]]  # each job specialises its own target only
        upload(next(s for n, s in job.items() if "upload-artifact" in n), work, store, env)

    job = steps("pipeline.yml", "gate-report")
    work = fresh_workspace(origin, tmp_path / "gr", head)
    shutil.copytree(store / "run_tiny", work / "pr" / "runs" / "tiny")
    for part in store.glob("bench_tiny_*"):
        shutil.copytree(part, work / "parts" / part.name)
    github_env = work / "github_env"
    env = {
        "PROJECT_PATH": "projects/tiny",
        "PROJECT": "tiny",
        "TARGETS": planned["targets"],
        "PARTS": "../parts",
        "GITHUB_ENV": str(github_env),
    }
    run_step(job["Gate and report"], work, env)
    assert "GATE_STATUS=0" in github_env.read_text()
    run = next(p for p in (work / "pr" / "runs" / "tiny").iterdir() if p.is_dir())
    report = (run / "report" / "report.md").read_text()
    assert report.count("Specialised subnet") == 2
