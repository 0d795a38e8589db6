"""What a stranger can put in a run folder, a report branch, a data pointer or a registry
record, read by the GitOps code in process: each refused with one TangoError line, never a
traceback and never a promotion."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tango_ci.dvcstore import pull_pointers
from tango_ci.exceptions import TangoError
from tango_ci.gitops import local
from tango_ci.gitops.promote import promote_pending
from tango_ci.gitops.publish import publish_run
from tango_ci.gitops.runfolder import collect
from tango_ci.gitrepo import commit_files
from tango_ci.registry.records import (
    DIR_MD5,
    MD5,
    NAME,
    SHA256,
    UntrustedDataError,
    check_record,
    check_results,
)
from tango_ci.rundir import RunDir
from tests.conftest import git
from tests.gitops.test_promote_pending import (  # fixtures are used by name
    branch_with_project,
    merge,
    repo,  # noqa: F401
    stored,  # noqa: F401
)
from tests.hostile.test_forge import RUN, ci_repo, fabricate_run  # noqa: F401 (a fixture)


def results(**changes) -> dict:
    """A results.json as publish writes it, with ``changes`` to its first target."""
    target = {
        "passed": True,
        "engine": "onnxruntime",
        "precision": "fp32",
        "runner": "local-cpu",
        "metrics": {"accuracy": 0.9},
    }
    return {
        "project": "demo",
        "run": "r1",
        "task": "classification",
        "architecture": "resnet-xs",
        "passed": True,
        "targets": {"cpu": target | changes},
    }


# ----------------------------------------------------------------------------- records
@pytest.mark.parametrize(
    "pattern, text",
    [
        (NAME, "demo\n"),
        (SHA256, "a" * 64 + "\n"),
        (MD5, "a" * 32 + "\n"),
        (DIR_MD5, "a" * 32 + ".dir\n"),
    ],
)
def test_a_trailing_newline_is_not_a_name_or_hash(pattern, text: str) -> None:
    assert pattern.match(text) is None
    assert pattern.match(text[:-1])


def test_a_project_name_with_a_newline_is_refused() -> None:
    with pytest.raises(UntrustedDataError, match="field 'project' must be a name"):
        check_results(results() | {"project": "demo\n"}, "results.json")


@pytest.mark.parametrize(
    "architecture", ["a\n::error::forged", "x\x1b[2J", "[/x]", "a|b", "a" * 301]
)
def test_an_architecture_that_prints_as_more_than_text_is_refused(architecture: str) -> None:
    pattern = "must be at most 300 characters, without control characters"
    with pytest.raises(UntrustedDataError, match=f"field 'architecture' {pattern}"):
        check_results(results() | {"architecture": architecture}, "results.json")
    with pytest.raises(UntrustedDataError, match=f"field 'targets.cpu.architecture' {pattern}"):
        check_results(results(architecture=architecture), "results.json")
    with pytest.raises(UntrustedDataError, match=f"field 'architecture' {pattern}"):
        check_record({"architecture": architecture}, "demo-cpu@v1.0.0")


def test_a_metric_no_float_can_hold_is_refused() -> None:
    with pytest.raises(UntrustedDataError, match=r"field 'targets\.cpu\.metrics\.accuracy' is too"):
        check_results(results(metrics={"accuracy": 10**400}), "results.json")


# ----------------------------------------------------------------------------- run folders
def _metrics(run: Path, change) -> None:
    path = run / "bench" / "cpu" / "metrics.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def test_a_null_build_record_is_read_as_none(tmp_path: Path) -> None:
    run = fabricate_run(tmp_path)
    _metrics(run, lambda m: m | {"build": None})
    assert collect(RunDir(run))["targets"]["cpu"]["artifact_files"]


def test_a_task_metric_no_float_can_hold_is_one_line(tmp_path: Path) -> None:
    run = fabricate_run(tmp_path)
    _metrics(run, lambda m: m | {"task_metrics": {"accuracy": 10**400}})
    with pytest.raises(TangoError) as caught:
        collect(RunDir(run))
    assert str(caught.value) == (
        f"run {RUN}: bench/cpu/metrics.json: field 'task_metrics.accuracy' is too large for a "
        "number"
    )


def test_a_version_with_a_trailing_newline_is_refused() -> None:
    from tango_ci.registry import parse_reference

    with pytest.raises(TangoError, match=r"is not a version like v1\.2\.3"):
        parse_reference("demo-cpu@v1.0.0\n")


# ----------------------------------------------------------------------------- promotion
def merged_report(repo: Path, artifact: dict, **changes) -> None:
    """A well-shaped report of project a, pushed by hand, whose source main merged."""
    source = branch_with_project(repo, "add-a", "a")
    forged = results(artifact=artifact) | {"project": "a", "source_commit": source} | changes
    commit_files(repo, "reports/a", {"results.json": json.dumps(forged).encode()}, "by hand")
    merge(repo, "add-a")


def test_an_artifact_in_another_dvc_remote_is_never_promoted(repo: Path, stored: dict) -> None:
    merged_report(repo, stored | {"remote": "s3://attacker/store\n::error::x"})
    outcome = promote_pending(repo, "main", push=False)
    assert outcome[0]["promoted"] == [
        {
            "name": "a-cpu",
            "skipped": "its artifact is in the DVC remote 's3://attacker/store\\n::error::x', "
            f"not in this repository's ({stored['remote']})",
        }
    ]
    assert git(repo, "tag", "--list").strip() == ""


def test_without_a_dvc_remote_on_main_nothing_is_promoted(repo: Path, stored: dict) -> None:
    git(repo, "rm", "-q", ".dvc/config")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "no remote")
    merged_report(repo, stored)
    skipped = promote_pending(repo, "main", push=False)[0]["promoted"][0]["skipped"]
    assert "not in this repository's (none: " in skipped and "is not a DVC repository" in skipped
    assert git(repo, "tag", "--list").strip() == ""


def test_a_local_remote_resolved_in_another_checkout_is_promoted(repo: Path, stored: dict) -> None:
    """main's relative `../.dvc-storage` is an absolute path of the checkout that resolved it:
    the workflows publish from trusted/ and promote from the workspace root."""
    elsewhere = str(Path(stored["remote"]).parent / "trusted" / ".dvc-storage")
    merged_report(repo, stored | {"remote": elsewhere})
    [promoted] = promote_pending(repo, "main", push=False)[0]["promoted"]
    assert "skipped" not in promoted and git(repo, "tag", "--list").strip() != ""


def test_a_report_without_classes_is_promoted(repo: Path, stored: dict) -> None:
    merged_report(repo, stored)  # results() has no "classes": check_results lets it be
    outcome = promote_pending(repo, "main", push=False)
    assert [item.get("version") for item in outcome[0]["promoted"]] == ["v1.0.0"]


def test_the_local_forge_takes_pushes_to_reports_from_its_worker_only(tmp_path: Path) -> None:
    bare = local.create(tmp_path / "forge.git")
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(bare), str(work))
    git(work, "checkout", "-qb", "reports/demo")
    (work / "results.json").write_text("{}\n")
    git(work, "add", "results.json")
    git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "forged")
    pushed = subprocess.run(
        ["git", "push", "origin", "reports/demo"], cwd=work, capture_output=True, text=True
    )
    assert pushed.returncode != 0
    assert "tango-ci: refs/heads/reports/demo is written by the forge's worker only" in (
        pushed.stderr
    )
    assert not git(bare, "branch", "--list", "reports/*").strip()
    with local.report_pushes(bare):
        git(work, "push", "-q", "origin", "reports/demo")
    assert git(bare, "branch", "--list", "reports/*").strip() == "reports/demo"
    assert local.TOKEN_VARIABLE not in os.environ


# ----------------------------------------------------------------------------- data pointers
@pytest.mark.parametrize(
    "text, message",
    [
        (
            "wdir: ../../outside\nouts:\n- md5: {md5}\n  path: data\n",
            "the document has 'wdir', which a data pointer may not have (only outs, md5, frozen, "
            "meta, desc)",
        ),
        (
            "deps:\n- path: /etc/passwd\nouts:\n- md5: {md5}\n  path: data\n",
            "the document has 'deps', which a data pointer may not have (only outs, md5, frozen, "
            "meta, desc)",
        ),
        (
            "outs:\n- md5: {md5}\n  path: data\n  remote: attacker\n",
            "field 'outs[0]' has 'remote', which a data pointer may not have (only path, md5, "
            "size, nfiles, hash, isexec, desc, type, labels, meta, cache, persist, push)",
        ),
    ],
)
def test_a_data_pointer_may_hold_only_outputs_and_hashes(
    tmp_path: Path, text: str, message: str
) -> None:
    folder = tmp_path / "projects" / "p"
    folder.mkdir(parents=True)
    (folder / "data.dvc").write_text(text.format(md5="0" * 32 + ".dir"))
    with pytest.raises(UntrustedDataError) as caught:
        pull_pointers(tmp_path, folder)
    assert str(caught.value) == f"projects/p/data.dvc: {message}; it was not pulled"


def test_data_is_not_pulled_through_a_linked_dvc_folder(tmp_path: Path, outside: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / ".dvc").symlink_to(outside)
    with pytest.raises(UntrustedDataError, match=r"\.dvc is a symbolic link or not a folder"):
        pull_pointers(tmp_path / "repo", tmp_path / "repo")


@pytest.mark.parametrize("kind", ["link", "file"])
def test_the_local_forge_refuses_a_branch_whose_dvc_is_not_a_folder(
    tmp_path: Path, outside: Path, kind: str
) -> None:
    bare = tmp_path / "forge.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    (bare / "tango" / "work").mkdir(parents=True)
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(bare), str(work))
    if kind == "link":
        (work / ".dvc").symlink_to(outside)
    else:
        (work / ".dvc").write_text("[core]\n")
    git(work, "add", ".dvc")
    git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a .dvc")
    git(work, "push", "-q", "origin", "HEAD:hostile")
    job = {
        "id": "j1",
        "kind": "report",
        "branch": "hostile",
        "after": git(work, "rev-parse", "HEAD").strip(),
    }
    with pytest.raises(TangoError) as caught:
        local.run_job(bare, job, print)
    assert str(caught.value) == (
        "hostile: .dvc is a symbolic link or not a folder, so the forge cannot set its DVC "
        "remote and cache; the job was refused"
    )
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]


# ----------------------------------------------------------------------------- artifact folders
def test_only_the_verified_files_of_an_artifact_are_pushed(ci_repo: Path) -> None:
    run = ci_repo / "runs" / "demo" / RUN
    planted = b"a file no stage recorded"
    (run / "compile" / "cpu" / "planted.engine").write_bytes(planted)
    (run / "compile" / "cpu" / "quantization").mkdir()
    (run / "compile" / "cpu" / "quantization" / "scratch.onnx").write_bytes(planted)
    shutil.copy2(run / "train" / "model.json", run / "compile" / "cpu" / "model.json")
    published = publish_run(ci_repo, RunDir(run), push=False)
    target = published.results["targets"]["cpu"]
    assert sorted(target["artifact"]["files"]) == ["artifact.json", "model.json", "model.onnx"]
    assert target["artifact"]["files"] == target["artifact_files"]
    stored = [p.read_bytes() for p in (ci_repo.parent / "storage").rglob("*") if p.is_file()]
    assert planted not in stored


def test_a_malformed_model_record_in_an_artifact_is_refused(tmp_path: Path) -> None:
    run = fabricate_run(tmp_path)
    (run / "compile" / "cpu" / "model.json").write_text('{"task": "[x](http://e)"}')
    with pytest.raises(UntrustedDataError, match=r"^run \S+: compile/cpu/model\.json: "):
        collect(RunDir(run))


# ----------------------------------------------------------------------------- printed text
HOSTILE = "[/x] [bold]b\n::error::forged\x1b[2J"


def cli(monkeypatch: pytest.MonkeyPatch, *args: str, **api_calls) -> str:
    """The output of `tango ARGS` in process, with ``api_calls`` replacing the API's answers;
    it must end well, with no control character and no line a text from outside began."""
    from typer.testing import CliRunner

    from tango_ci import api, cli_common
    from tango_ci.cli import app

    for name, answer in api_calls.items():
        monkeypatch.setattr(api, name, lambda *a, answer=answer, **k: answer)
    # the console took its width when first made, whichever test made it
    monkeypatch.setattr(cli_common.out, "_width", 400)
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\n::error" not in result.output
    return result.output


def test_registry_tables_print_records_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    record = {"architecture": HOSTILE, "engine": HOSTILE, "run": "[/x]", "metrics": {}}
    version = {"version": "v1.0.0", "stages": ["[/x]"], "record": record}
    shown = cli(monkeypatch, "registry", "show", "demo-cpu", artifact_versions=[version])
    assert "[/x] [bold]b\\n::error::forged\\x1b[2J" in shown
    row = {"name": "[/x]", "latest": "v1.0.0", "stages": {"[b]": "v1.0.0"}}
    assert "[b]: v1.0.0" in cli(monkeypatch, "registry", "ls", registry_overview=[row])
    event = {"created_at": "t", "event": "[/x]", "version": "v1.0.0", "stage": None}
    event |= {"tag": "[/x]", "author": HOSTILE}
    history = cli(monkeypatch, "registry", "history", "demo-cpu", artifact_history=[event])
    assert "[/x] [bold]b\\n::error::forged" in history


def test_forge_status_and_plan_print_outside_text_as_text(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    job = {"id": "j1", "branch": "b", "state": "failed", "error": HOSTILE, "results": [], "log": []}
    status = cli(monkeypatch, "gitops", "status", str(tmp_path), forge_status=[job])
    assert "[/x] [bold]b\\n::error::forged" in status
    plan = SimpleNamespace(
        projects=[{"project": "demo", "runner": "gpu", "runs-on": "[x]"}],
        reasons={"demo": [HOSTILE]},
        targets=[{"project": "demo", "target": "cpu", "runner": "[/x]", "runs-on": "[/y]"}],
    )
    planned = cli(monkeypatch, "ci", "plan", "--all", plan_change=plan, write_github_output=None)
    assert "demo: [/x] [bold]b\\n::error::forged\\x1b[2J; train on gpu [x]" in planned
    assert "target cpu on [/x] [/y]" in planned


def test_promotion_lines_are_printed_and_logged_as_one_line_each(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    why = "architecture a -> x\n::error file=README.md::forged\x1b[2J (minor)"
    outcome = [{"project": "a", "report": "c", "run": "r1", "passed": True}]
    outcome[0]["promoted"] = [{"name": "a-cpu", "version": "v1.1.0", "why": why}]
    printed = cli(monkeypatch, "ci", "promote", "--no-push", promote_merged=outcome)
    assert "a-cpu: v1.1.0 (architecture a -> x\\n::error file=README.md::forged\\x1b[2J" in printed
    job = {"log": []}
    local._log(tmp_path / "job.json", job, why)
    assert "\n" not in job["log"][0] and "\x1b" not in job["log"][0]


# ----------------------------------------------------------------------------- run manifests
@pytest.mark.parametrize("path", ["a\x00b", "/etc/passwd", "../../outside"])
def test_a_manifest_output_outside_the_run_or_with_a_nul_is_one_line(
    tmp_path: Path, path: str
) -> None:
    run = fabricate_run(tmp_path)
    manifest = {"stage": "compile", "status": "complete", "outputs": {"x": {"path": path}}}
    manifest["outputs"]["x"]["sha256"] = "0" * 64
    (run / "compile" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(TangoError, match=r"is outside the run folder$"):
        RunDir(run).verify("compile")


@pytest.mark.parametrize(
    "text", ["resnet18 at 224 (xs)", "é ok", "a\nb", "a\x1b[2Jb", "a\u2028b", "x[/y]", "a|b", ""]
)
def test_records_read_an_architecture_exactly_as_the_trained_model_schema(text: str) -> None:
    """One definition of a printable architecture: the schema's pattern and the records'
    check agree on every case."""
    import re

    from tango_ci.contracts import schema_file
    from tango_ci.registry.records import ARCHITECTURE

    schema = json.loads(schema_file("run/trained-model.schema.json").read_text())
    pattern = schema["properties"]["architecture"]["pattern"]
    assert bool(re.search(pattern, text)) == bool(ARCHITECTURE.fullmatch(text))
