"""The operation loop on the local forge, end to end: the prod model is served, shifted traffic
comes in, `tango monitor` finds drift, the labelling queue is written, labels come back from a
Label Studio export made from the true labels, and a retraining branch's challenger becomes
`NAME@v1.0.1` and prod only when it beats production on the new data. Real git, hooks, DVC,
GTO, HTTP server and pipeline."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tango_ci.data.synth import SynthRequest, write_shapes
from tango_ci.gitops import local
from tests.conftest import git
from tests.pipeline_helpers import TINY, copy_template

pytestmark = pytest.mark.slow

IDENTITY = ["-c", "user.name=dev", "-c", "user.email=dev@example.com"]
NAME = "shapes-cpu-fp32"
PROJECT = (
    TINY.format(per_class=40, trials=1, search_epochs=1, epochs=4, latency=1000, extra_targets="")
    .replace("name: tiny", "name: shapes")
    .replace("  patience: 50\n", "  patience: 50\n  runner: local-cpu\n")
    + "gate:\n  challenger: {new_data: new-labels, margin: MARGIN, tolerance: 0.25}\n"
)


def tango(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "tango_ci", *args], cwd=cwd, capture_output=True, text=True
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def push_branch(work: Path, bare: Path, branch: str, message: str) -> list[dict]:
    git(work, "add", "-A")
    git(work, *IDENTITY, "commit", "-qm", message)
    git(work, "push", "-q", "origin", branch)
    jobs = local.wait(bare, timeout=900)
    assert jobs[-1]["state"] == "done", jobs[-1].get("error")
    return jobs


def merge(work: Path, bare: Path, branch: str) -> dict:
    git(work, "checkout", "-q", "main")
    git(work, *IDENTITY, "merge", "-q", "--no-ff", branch, "-m", f"Merge {branch}")
    git(work, "push", "-q", "origin", "main")
    jobs = local.wait(bare, timeout=600)
    assert jobs[-1]["state"] == "done", jobs[-1].get("error")
    return jobs[-1]


def stages(work: Path) -> dict:
    git(work, "fetch", "-q", "origin", "--tags", "--force")
    listed = json.loads(tango(work, "registry", "ls", "--json").stdout)
    return {r["name"]: (r["latest"], r["stages"]) for r in listed}


def shifted_traffic(folder: Path) -> dict[str, str]:
    """Shapes the model never saw, in dim light; returns sha256 of each PNG -> class."""
    write_shapes(folder, SynthRequest(out=folder, images_per_class=30, size=32, seed=7), None)
    truth = {}
    for path in sorted(folder.rglob("*.png")):
        pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) * 0.4
        buffer = io.BytesIO()
        Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
        path.write_bytes(buffer.getvalue())
        truth[hashlib.sha256(buffer.getvalue()).hexdigest()] = path.parent.name
    return truth


def serve_and_send(bundle: Path, folder: Path, log: Path, kept: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "tango_runtime", "serve", "--port", "0"]
        + ["--log", str(log), "--keep-images", str(kept), "--rate", "10000"],
        cwd=bundle,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        assert "serving" in line, line
        model, base = line.split()[1], line.split(" on ")[-1].strip()  # serving NAME (...) on URL
        assert f"({NAME}@v1.0.0)" in line
        for path in sorted(folder.rglob("*.png")):
            request = urllib.request.Request(
                f"{base}/models/{model}/image", data=path.read_bytes(), method="POST"
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.status == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_drift_labels_retrain_and_only_a_winning_challenger_is_promoted(tmp_path: Path) -> None:
    bare = tmp_path / "forge.git"
    tango(tmp_path, "gitops", "local", str(bare), "--bench-seconds", "1")
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(bare), str(work))
    copy_template(work)
    storage = bare / "tango" / "dvc-storage"  # the forge's DVC remote, shared with this clone
    (work / ".dvc" / "config.local").write_text(f"['remote \"local\"']\n    url = {storage}\n")
    push_branch(work, bare, "main", "TANGO-CI template")

    # a project whose data is under DVC; its first version goes to prod
    git(work, "checkout", "-qb", "add-shapes")
    project = work / "projects" / "shapes"
    project.mkdir(parents=True)
    spec = project / "project.yaml"
    spec.write_text(PROJECT.replace("MARGIN", "0.0"))
    tango(work, "data", "synth", "projects/shapes")
    tango(work, "data", "track", "projects/shapes")
    report = push_branch(work, bare, "add-shapes", "Add shapes")[-1]
    assert report["results"][0]["passed"] is True, report["results"]
    merge(work, bare, "add-shapes")
    assert stages(work)[NAME] == ("v1.0.0", {"prod": "v1.0.0"})

    # serve prod; shifted traffic; monitor finds drift; the queue is written
    bundle = tmp_path / "bundle"
    tango(work, "deploy", f"{NAME}#prod", "--to", str(bundle))
    log, kept = tmp_path / "log.sqlite", tmp_path / "kept"
    truth = shifted_traffic(tmp_path / "traffic")
    serve_and_send(bundle, tmp_path / "traffic", log, kept)
    drift = tango(
        work, "monitor", str(log), "--bundle", str(bundle), "--window", "90",
        "--out", str(tmp_path / "drift"), check=False,
    )  # fmt: skip
    assert drift.returncode == 3, drift.stderr
    assert json.loads((tmp_path / "drift" / "drift.json").read_text())["drift"] is True
    queue = tmp_path / "queue"
    tango(work, "label", "queue", str(log), "--bundle", str(bundle), "--images", str(kept),
          "--budget", "60", "--out", str(queue))  # fmt: skip
    tasks = json.loads((queue / "tasks.json").read_text())
    assert len(tasks) == 60

    # a Label Studio export made from the true labels, imported on a retraining branch
    for task in tasks:
        label = truth[hashlib.sha256((queue / task["data"]["image"]).read_bytes()).hexdigest()]
        result = [{"type": "choices", "from_name": "label", "to_name": "image",
                   "value": {"choices": [label]}}]  # fmt: skip
        task["annotations"] = [{"result": result}]
    (queue / "export.json").write_text(json.dumps(tasks))
    git(work, "checkout", "-qb", "retrain-strict", "main")
    imported = tango(work, "label", "import", str(queue / "export.json"), "--project",
                     "projects/shapes")  # fmt: skip
    said = " ".join(imported.stderr.split())
    # about 30% (--eval-fraction) of the 60, chosen by content, go to the new-data folder
    held = re.search(r"\((\d+) of them into projects/shapes/new-labels", said)
    assert "60 imported" in said and held is not None and 9 <= int(held[1]) <= 27, said
    tango(work, "data", "track", "projects/shapes")
    assert (project / "new-labels.dvc").is_file()

    # a challenger asked to win by a margin it cannot reach: prod stays
    spec.write_text(PROJECT.replace("MARGIN", "1.0"))
    report = push_branch(work, bare, "retrain-strict", "Retrain on labelled drift (strict)")[-1]
    assert report["results"][0]["passed"] is False
    git(work, "fetch", "-q", "origin")
    decision = git(work, "show", "origin/reports/shapes:report.md")
    assert f"on new data ({held[1]} images) vs production shapes-cpu-fp32@v1.0.0" in decision
    merge(work, bare, "retrain-strict")
    assert stages(work)[NAME] == ("v1.0.0", {"prod": "v1.0.0"})

    # the same data with margin 0: promoted exactly when it scores at least production's on
    # the new images and the holdout
    git(work, "checkout", "-qb", "retrain", "main")
    spec.write_text(PROJECT.replace("MARGIN", "0.0"))
    report = push_branch(work, bare, "retrain", "Retrain on labelled drift")[-1]
    git(work, "fetch", "-q", "origin")
    shown = json.loads(git(work, "show", "origin/reports/shapes:report.json"))
    against = [c for c in shown["targets"]["cpu-fp32"]["decision"]["checks"] if "champion" in c]
    assert len(against) == 2
    won = all(c["value"] >= c["limit"] for c in against)
    assert report["results"][0]["passed"] is won
    merge(work, bare, "retrain")
    expected = ("v1.0.1", {"prod": "v1.0.1"}) if won else ("v1.0.0", {"prod": "v1.0.0"})
    assert stages(work)[NAME] == expected
