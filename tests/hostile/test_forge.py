"""The CI side: pushed branches, downloaded run folders, data pointers and report branches.

A pushed branch is data to the local forge: its code never runs on the host. A run folder
downloaded from CI jobs is data to `tango ci publish`: size-limited, shape-checked, and its
artifact hash-checked against the stage manifests before anything is stored or published.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tango_ci.dvcstore import run_dvc
from tango_ci.gitops import local
from tango_ci.gitrepo import commit_files
from tests.conftest import REPO, git, write_project
from tests.hostile.conftest import Tree, refused, tango

IDENTITY = ["-c", "user.name=dev", "-c", "user.email=dev@example.com"]
RUN = "20260101-000000-abcd"


def plant(folder: Path, relative: str, marker: Path) -> None:
    """A Python file that, if it is ever imported or run, leaves ``marker`` behind."""
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")


# ----------------------------------------------------------------------------- the local forge
def test_a_pushed_branch_never_runs_its_own_code(tmp_path: Path, outside: Path) -> None:
    bare = local.create(tmp_path / "forge.git")
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(bare), str(work))
    for folder in ("runners", "schemas"):
        shutil.copytree(REPO / folder, work / folder)
    git(work, "add", "-A")
    git(work, *IDENTITY, "commit", "-qm", "template")
    git(work, "push", "-q", "origin", "main")

    git(work, "checkout", "-qb", "hostile")
    project = work / "projects" / "demo"
    (project / "data" / "a").mkdir(parents=True)
    (project / "data" / "b").mkdir(parents=True)
    (project / "data" / "a" / "1.png").write_text("junk")  # the run fails fast, at data
    (project / "data" / "b" / "1.png").write_text("junk")
    (project / "project.yaml").write_text(
        "name: demo\ntask: classification\ndata:\n  path: data\n  format: imagefolder\n"
        "targets:\n  - name: cpu\n    runner: local-cpu\n    engine: onnxruntime\n"
    )
    for relative in (
        "tango_ci/__init__.py",
        "tango_ci/__main__.py",
        "sitecustomize.py",
        "usercustomize.py",
        "dvc/__init__.py",
        "dvc/__main__.py",
        "yaml.py",
    ):
        plant(work, relative, outside / f"ran-{relative.replace('/', '-')}")
    (work / ".dvc").mkdir()
    (work / ".dvc" / "config").write_text("")
    # where the worker once wrote: a link in the branch must not carry a write outside
    (work / ".dvc" / "config.local").symlink_to(outside / "keep.txt")
    (work / "run-demo.log").symlink_to(outside / "keep.txt")
    (work / "runs").symlink_to(outside)
    git(work, "add", "-A", "-f")
    git(work, *IDENTITY, "commit", "-qm", "a project, and code that should never run")
    tree = Tree(outside)
    pushed = subprocess.run(
        ["git", "push", "-q", "origin", "hostile"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | {"PYTHONPATH": str(work)},
    )  # the hook's too
    assert pushed.returncode == 0, pushed.stderr

    jobs = local.wait(bare, timeout=300)
    assert not list(tmp_path.rglob("ran-*"))
    assert [j["state"] for j in jobs] == ["done", "failed"], [j.get("error") for j in jobs]
    assert jobs[1]["error"] == (
        "TangoError: demo: the pipeline stopped before the gate: error: "
        "2 of 2 images cannot be read (100.0% > the allowed 1.0% of "
        "data.max_bad_fraction); first: a/1.png (UnidentifiedImageError: cannot identify "
        "image file '1.png'); b/1.png (UnidentifiedImageError: cannot identify image file "
        "'1.png')"
    )
    log = bare / "tango" / "runs" / jobs[1]["id"] / "run-demo.log"
    assert "cannot be read" in log.read_text()  # the installed tool ran, on the clone's data
    tree.assert_unchanged()
    clone = bare / "tango" / "work" / jobs[1]["id"]
    assert (clone / ".dvc" / "config.local").is_file()
    assert not (clone / ".dvc" / "config.local").is_symlink()


def test_dvc_never_imports_from_the_folder_it_runs_in(
    tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path / "checkout"
    for relative in ("dvc/__init__.py", "dvc/__main__.py", "sitecustomize.py", "yaml.py"):
        plant(checkout, relative, outside / f"ran-{relative.replace('/', '-')}")
    monkeypatch.setenv("PYTHONPATH", str(checkout))
    assert run_dvc(checkout, "version").strip()
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]


# ----------------------------------------------------------------------------- run folders
def fabricate_run(root: Path) -> Path:
    """A finished run of projects/demo as CI jobs leave it (no training needed)."""
    run = root / "runs" / "demo" / RUN
    model = os.urandom(3000)
    digest = hashlib.sha256(model).hexdigest()
    files = {
        "spec.json": {
            "project_file": str(root / "projects" / "demo" / "project.yaml"),
            "spec": {"name": "demo", "task": "classification", "targets": [{"name": "cpu"}]},
        },
        "gate/decision.json": {
            "passed": True,
            "targets": {
                "cpu": {"passed": True, "checks": [{"check": "latency p95", "status": "pass"}]}
            },
        },
        "train/model.json": {
            "schema_version": 1,
            "task": "classification",
            "family": "resnet",
            "name": "resnet-xs",
            "architecture": "resnet-xs",
            "image_size": 16,
            "classes": ["a", "b"],
            "shape": {"level": "xs"},
        },
        "compile/cpu/artifact.json": {
            "engine": "onnxruntime",
            "precision": "fp32",
            "file": "model.onnx",
            "sha256": digest,
            "bytes": 3000,
        },
        "compile/manifest.json": {
            "stage": "compile",
            "status": "complete",
            "outputs": {
                "cpu/onnxruntime-fp32": {
                    "path": "compile/cpu/model.onnx",
                    "sha256": digest,
                    "bytes": 3000,
                }
            },
        },
        "bench/cpu/metrics.json": {
            "target": "cpu",
            "engine": "onnxruntime",
            "precision": "fp32",
            "runner": "local-cpu",
            "artifact": "/elsewhere/runs/demo/x/compile/cpu",
            "latency": {
                "p50_ms": 1.0,
                "p90_ms": 1.5,
                "p95_ms": 2.0,
                "p99_ms": 3.0,
                "peak_rss_mb": 50.0,
            },
            "quality": {"name": "accuracy", "label": "accuracy", "value": 0.9},
            "task_metrics": {"accuracy": 0.9},
            "build": {"file": "model.onnx", "sha256": digest},
        },
    }
    for relative, content in files.items():
        (run / relative).parent.mkdir(parents=True, exist_ok=True)
        (run / relative).write_text(json.dumps(content))
    (run / "compile" / "cpu" / "model.onnx").write_bytes(model)
    (run / "report").mkdir()
    (run / "report" / "report.md").write_text("# demo\n")
    return run


@pytest.fixture
def ci_repo(spec_repo: Path, tmp_path: Path) -> Path:
    """A committed repository with projects/demo, a DVC remote, and a finished run."""
    write_project(spec_repo, "demo")
    run_dvc(spec_repo, "init", "-q")
    run_dvc(spec_repo, "remote", "add", "-d", "local", str(tmp_path / "storage"))
    (spec_repo / ".gitignore").write_text("runs/\n")
    git(spec_repo, "add", "-A")
    git(spec_repo, *IDENTITY, "commit", "-qm", "demo")
    fabricate_run(spec_repo)
    return spec_repo


def publish(root: Path):
    return tango("ci", "publish", "projects/demo", "--run", RUN, "--no-push", cwd=root)


def nothing_published(root: Path, tree: Tree) -> None:
    tree.assert_unchanged()
    assert not git(root, "branch", "--list", "reports/*").strip()
    assert not (root.parent / "storage").exists()


def test_a_sound_run_folder_is_published(ci_repo: Path) -> None:
    result = publish(ci_repo)
    assert result.code == 0, result.stderr
    assert "on reports/demo; gate pass" in result.stderr
    results = json.loads(git(ci_repo, "show", "reports/demo:results.json"))
    model = ci_repo / "runs" / "demo" / RUN / "compile" / "cpu" / "model.onnx"
    built = model.with_name("artifact.json")
    assert results["targets"]["cpu"]["artifact_files"] == {
        "model.onnx": hashlib.sha256(model.read_bytes()).hexdigest(),
        "artifact.json": hashlib.sha256(built.read_bytes()).hexdigest(),
    }
    assert results["targets"]["cpu"]["artifact"]["md5"].endswith(".dir")


def _json(run: Path, relative: str, change) -> None:
    path = run / relative
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def _text(run: Path, relative: str, text: str) -> None:
    (run / relative).write_text(text)


def _link(run: Path, relative: str, outside: Path) -> None:
    (run / relative).unlink(missing_ok=True)
    (run / relative).symlink_to(outside / "keep.txt")


METRICS = "bench/cpu/metrics.json"
CASES = {
    "huge metrics": (
        lambda run, out: _text(run, METRICS, " " * (50 * 2**20)),
        f"run {RUN}: {METRICS} is {50 * 2**20} bytes, more than the 4194304 "
        "allowed; it was not read",
    ),
    "metrics list": (
        lambda run, out: _text(run, METRICS, "[1, 2]"),
        f"run {RUN}: {METRICS}: the document must be an object, not a list",
    ),
    "metrics NaN": (
        lambda run, out: _text(
            run, METRICS, (run / METRICS).read_text().replace('"p95_ms": 2.0', '"p95_ms": NaN')
        ),
        f"run {RUN}: {METRICS} is not valid JSON (NaN at latency/p95_ms is not a number JSON allows)",
    ),
    "metrics string": (
        lambda run, out: _json(
            run, METRICS, lambda m: m | {"latency": m["latency"] | {"p95_ms": "fast"}}
        ),
        f"run {RUN}: {METRICS}: field 'latency.p95_ms' must be a number, not a string",
    ),
    "metrics link": (
        lambda run, out: _link(run, METRICS, out),
        f"run {RUN}: {METRICS} is a symbolic link; it was not followed",
    ),
    "model name with markup": (
        lambda run, out: _json(run, "train/model.json", lambda m: m | {"name": "[x](http://e)"}),
        f"run {RUN}: train/model.json: at name: '[x](http://e)' does not match "
        "'^[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}$' (schemas/run/trained-model.schema.json)",
    ),
    "model of an unknown task": (
        lambda run, out: _json(run, "train/model.json", lambda m: m | {"task": "../../x"}),
        f"run {RUN}: train/model.json: at task: '../../x' does not match "
        "'^[a-z][a-z0-9_-]{0,39}$' (schemas/run/trained-model.schema.json)",
    ),
    "quality not a number": (
        lambda run, out: _json(
            run, METRICS, lambda m: m | {"quality": m["quality"] | {"value": "high"}}
        ),
        f"run {RUN}: {METRICS}: field 'quality.value' must be a number, not a string",
    ),
    "spec link": (
        lambda run, out: _link(run, "spec.json", out),
        f"run {RUN}: spec.json is a symbolic link; it was not followed",
    ),
    "artifact climbs": (
        lambda run, out: _json(
            run, METRICS, lambda m: m | {"artifact": "/x/compile/../../../../outside"}
        ),
        f"run {RUN}: artifact path /x/compile/../../../../outside is not "
        "compile/cpu or compile/cpu/<candidate>",
    ),
    "link in artifact": (
        lambda run, out: _link(run, "compile/cpu/notes.txt", out),
        f"run {RUN}: compile/cpu: notes.txt is a symbolic link; an artifact "
        "holds regular files only",
    ),
    "report link": (
        lambda run, out: _link(run, "report/report.md", out),
        f"run {RUN}: report/report.md is a symbolic link or not a file; it was not published",
    ),
    "target name climbs": (
        lambda run, out: _json(
            run, "gate/decision.json", lambda d: d | {"targets": {"../../x": d["targets"]["cpu"]}}
        ),
        f"run {RUN}: gate/decision.json: field 'targets' must be a name of "
        "letters, digits, '.', '_' and '-', not '../../x'",
    ),
    "other project": (
        lambda run, out: _json(
            run, "spec.json", lambda s: s | {"spec": s["spec"] | {"name": "other"}}
        ),
        f"run {RUN}: spec.json names project 'other', but the run is in the folder of demo",
    ),
    "nothing recorded": (
        lambda run, out: [
            (run / "compile" / "manifest.json").unlink(),
            (run / "compile" / "cpu" / "artifact.json").unlink(),
            _json(run, METRICS, lambda m: {k: v for k, v in m.items() if k != "build"}),
        ],
        f"run {RUN}: no stage manifest records a file of compile/cpu; the "
        "artifact was not stored or published",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_malformed_run_folder_is_refused_before_anything_is_stored(
    ci_repo: Path, outside: Path, case: str
) -> None:
    change, message = CASES[case]
    change(ci_repo / "runs" / "demo" / RUN, outside)
    tree = Tree(ci_repo.parent)
    refused(publish(ci_repo), message)
    nothing_published(ci_repo, tree)


def test_an_artifact_that_differs_from_its_manifest_is_not_stored(ci_repo: Path) -> None:
    model = ci_repo / "runs" / "demo" / RUN / "compile" / "cpu" / "model.onnx"
    recorded = hashlib.sha256(model.read_bytes()).hexdigest()
    model.write_bytes(b"a different network")
    tree = Tree(ci_repo.parent)
    refused(
        publish(ci_repo),
        f"run {RUN}: compile/cpu/model.onnx has sha256 "
        f"{hashlib.sha256(b'a different network').hexdigest()}, but "
        f"compile/manifest.json recorded {recorded}; the artifact was "
        "not stored or published",
    )
    nothing_published(ci_repo, tree)


def test_a_run_id_that_climbs_out_is_refused(ci_repo: Path) -> None:
    tree = Tree(ci_repo.parent)
    refused(
        tango(
            "ci", "publish", "projects/demo", "--run", "../../../outside", "--no-push", cwd=ci_repo
        ),
        "--run '../../../outside' is not a run id (letters, digits, '.', '_', '-')",
    )
    nothing_published(ci_repo, tree)


# ----------------------------------------------------------------------------- report branches
@pytest.mark.parametrize(
    "content", [b"[1, 2, 3]", b'{"project": "demo", "run": NaN}', b" " * (5 * 2**20), b"\xff\xfe"]
)
def test_a_malformed_report_is_never_promoted(ci_repo: Path, content: bytes) -> None:
    head = git(ci_repo, "rev-parse", "HEAD").strip()
    commit_files(ci_repo, "reports/demo", {"results.json": content}, "a report?")
    tree = Tree(ci_repo.parent)
    result = tango("ci", "promote", "--base", head, "--no-push", cwd=ci_repo)
    assert result.code == 0, result.stderr
    assert "nothing to promote" in result.stderr
    assert not git(ci_repo, "tag", "--list").strip()
    tree.assert_unchanged(allowed=("repo/.git",))


def test_a_run_published_from_a_commit_without_its_project_is_warned_about(
    ci_repo: Path,
) -> None:
    """Promotion takes only a report whose source commit holds the project as main has it;
    publishing one from a commit without the project says that it can never be promoted."""
    empty = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree
    first = git(ci_repo, *IDENTITY, "commit-tree", empty, "-m", "before the project").strip()
    result = tango(
        "ci", "publish", "projects/demo", "--run", RUN, "--no-push", "--source", first, cwd=ci_repo
    )
    assert result.code == 0, result.stderr
    assert (
        f"warning: commit {first} holds no projects/demo/project.yaml, so this report can "
        "never be promoted" in " ".join(result.stderr.split())
    )
    again = publish(ci_repo)  # from HEAD, which holds it: no warning
    assert again.code == 0 and "warning" not in again.stderr
