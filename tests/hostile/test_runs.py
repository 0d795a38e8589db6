"""Hostile run folders: files swapped, truncated, planted or pointed elsewhere.

Run folders travel between CI jobs as artifacts, so every case here is what a stranger's
artifact could hold. One tiny run (data..export) is built once; each test works on a copy.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.hostile.conftest import Tree, refused, tango, tango_here
from tests.pipeline_helpers import make_repo

MARKER = "PWNED"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    from tango_ci import api

    root = tmp_path_factory.mktemp("built") / "repo"
    project = make_repo(root, per_class=6, trials=1, search_epochs=1, epochs=1, extra_targets="")
    api.run(project, until="export")
    return root


@pytest.fixture
def repo(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    shutil.copytree(built, copy, symlinks=True)
    return copy


def _run(repo: Path) -> Path:
    return repo / "runs" / "tiny" / os.readlink(repo / "runs" / "tiny" / "latest")


def _shown(path: Path, repo: Path) -> str:
    return str(path.relative_to(repo))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _evil_pickle(path: Path, marker: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"model": Evil()}, path)


def test_swapped_onnx_is_refused_naming_both_hashes(repo: Path) -> None:
    """issue 10: another run's model.onnx in export/ was used silently by --from compile."""
    onnx = _run(repo) / "export" / "model.onnx"
    recorded = _sha(onnx)
    onnx.write_bytes(os.urandom(2000))
    actual = _sha(onnx)
    tree = Tree(repo)
    result = tango_here("compile", "projects/tiny", cwd=repo)
    refused(
        result,
        f"{_shown(onnx, repo)}: sha256 {actual[:16]}… differs from {recorded[:16]}… "
        "recorded by the export stage; the file changed after it was written "
        "(re-run `tango export` or start a new run)",
    )
    assert tree.changes(allowed=("runs/tiny",)) == []
    assert not (_run(repo) / "compile" / "manifest.json").exists()


def test_truncated_manifest_is_one_line(repo: Path) -> None:
    manifest = _run(repo) / "search" / "manifest.json"
    manifest.write_text(manifest.read_text()[:40])
    result = tango_here("train", "projects/tiny", cwd=repo)
    assert result.code == 1
    assert result.error_line.startswith(f"{_shown(manifest, repo)}: not valid JSON (")


def test_manifest_output_outside_the_run_is_refused(repo: Path, outside: Path) -> None:
    manifest = _run(repo) / "train" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["outputs"]["best"]["path"] = "../../../../outside/keep.txt"
    manifest.write_text(json.dumps(data))
    result = tango_here("export", "projects/tiny", cwd=repo)
    refused(
        result,
        f"{_shown(manifest, repo)}: output '../../../../outside/keep.txt' is outside "
        "the run folder",
    )


def test_oversized_run_file_is_refused_unread(repo: Path) -> None:
    manifest = _run(repo) / "data" / "manifest.json"
    with open(manifest, "r+b") as handle:
        handle.truncate(80 * 1024 * 1024)  # sparse: no disk used, still 80 MiB to a reader
    result = tango_here("search", "projects/tiny", cwd=repo)
    refused(
        result,
        f"{_shown(manifest, repo)}: 83886080 bytes, more than the 67108864 a run file may have",
    )


@pytest.mark.parametrize(
    "recorded",
    [
        {"../../../outside/keep.txt\x1b[2J": "0" * 64},
        {"runners/local-cpu.yaml": ["not", "a", "hash"]},
    ],
    ids=["odd name", "odd value"],
)
def test_recorded_runner_files_are_compared_never_read(repo: Path, outside: Path, recorded) -> None:
    """A run's manifests name the runner files a stage used: the names are only compared with
    the repository's own runner files (never opened) and shown as text."""
    manifest = _run(repo) / "search" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["runner_files"] = recorded
    manifest.write_text(json.dumps(data))
    tree = Tree(outside)
    result = tango_here("compile", "projects/tiny", cwd=repo)
    name = next(iter(recorded))
    assert result.code == 1 and "\x1b" not in result.stderr
    assert result.error_line.startswith(name.replace("\x1b", "\\x1b"))
    assert "changed since the search stage of run" in result.error_line
    tree.assert_unchanged()


def test_nan_in_a_run_file_is_not_json(repo: Path) -> None:
    """issue 10: decision.json could hold NaN; strict JSON readers refuse it."""
    spec = _run(repo) / "spec.json"
    spec.write_text(spec.read_text().replace('"sha256"', '"weird": NaN, "sha256"', 1))
    result = tango_here("compile", "projects/tiny", cwd=repo)
    refused(
        result, f"{_shown(spec, repo)}: not valid JSON (NaN at weird is not a number JSON allows)"
    )


@pytest.mark.parametrize("run_id", ["../../../dir", "..", "a/b", "x\n"])
def test_run_option_stays_inside_runs(repo: Path, run_id: str) -> None:
    """issue 10: `--run ../../../dir` made `tango gate` write outside runs/."""
    tree = Tree(repo.parent)
    result = tango_here("gate", "projects/tiny", "--run", run_id, cwd=repo)
    refused(
        result,
        f"--run {run_id!r} is not a run id (letters, digits, dots, dashes and "
        "underscores, a folder of runs/tiny/)",
    )
    tree.assert_unchanged()


def test_linked_run_folder_is_not_a_run(repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(_run(repo), elsewhere)
    (repo / "runs" / "tiny" / "linked").symlink_to(elsewhere, target_is_directory=True)
    result = tango_here("gate", "projects/tiny", "--run", "linked", cwd=repo)
    assert result.code == 1
    assert result.error_line.startswith("no run 'linked' of project tiny; runs: ")


def test_latest_link_pointing_outside_is_refused(repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(_run(repo), elsewhere)
    link = repo / "runs" / "tiny" / "latest"
    link.unlink()
    link.symlink_to(elsewhere, target_is_directory=True)
    tree = Tree(tmp_path)
    result = tango_here("compile", "projects/tiny", cwd=repo)
    refused(result, "runs/tiny/latest: points outside runs/tiny; remove the link and pass --run")
    tree.assert_unchanged()


def test_second_writer_is_refused_with_the_holders_pid(repo: Path) -> None:
    """issue 10: two concurrent --resume of one run both wrote into it."""
    lock_path = _run(repo) / ".lock"
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("4242\n")
        lock.flush()
        result = tango("compile", "projects/tiny", "--run", _run(repo).name, cwd=repo)
    refused(
        result,
        f"run {_run(repo).name} is in use by process 4242; wait for it to finish, "
        "or start a new run",
    )


def _interrupt_training(repo: Path) -> Path:
    """The train stage as a kill leaves it: no manifest, a checkpoints folder."""
    train = _run(repo) / "train"
    (train / "manifest.json").unlink()
    (train / "checkpoints").mkdir(exist_ok=True)
    return train / "checkpoints" / "last.pt"


def test_planted_checkpoint_is_never_unpickled(repo: Path, tmp_path: Path) -> None:
    """issue 10: a planted checkpoints/last.pt was unpickled on resume."""
    marker = tmp_path / MARKER
    last = _interrupt_training(repo)
    _evil_pickle(last, marker)
    (last.parent / "last.pt.sha256").unlink(missing_ok=True)
    result = tango("train", "projects/tiny", cwd=repo)
    refused(
        result,
        f"{_shown(last, repo)}: no recorded sha256 beside it, so it was not written "
        "by this run; delete it to train from the start",
    )
    assert not marker.exists()


def test_planted_checkpoint_with_a_forged_hash_is_still_not_unpickled(
    repo: Path, tmp_path: Path
) -> None:
    marker = tmp_path / MARKER
    last = _interrupt_training(repo)
    _evil_pickle(last, marker)
    (last.parent / "last.pt.sha256").write_text(_sha(last) + "\n")
    result = tango("train", "projects/tiny", cwd=repo)
    assert result.code == 1
    assert result.error_line.startswith(f"{_shown(last, repo)}: not loadable as plain weights (")
    assert result.error_line.endswith("(it names posix.system, which plain weights never hold)")
    assert not marker.exists()


def test_pretrained_pickle_is_never_unpickled(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / MARKER
    weights = repo / "projects" / "tiny" / "evil.pt"
    _evil_pickle(weights, marker)
    spec = repo / "projects" / "tiny" / "project.yaml"
    spec.write_text(
        spec.read_text().replace("  patience: 50\n", "  patience: 50\n  pretrained: evil.pt\n")
    )
    result = tango("run", "projects/tiny", "--until", "train", cwd=repo)
    assert result.code == 1
    refused(
        result,
        "projects/tiny/evil.pt: not loadable as plain weights (it names "
        "posix.system, which plain weights never hold)",
    )
    assert not marker.exists()


def test_runs_folder_that_is_a_file_is_one_line(repo: Path) -> None:
    """issue 10: an unwritable runs/ gave a traceback."""
    shutil.rmtree(repo / "runs")
    (repo / "runs").write_text("not a folder\n")
    result = tango_here("data", "projects/tiny", cwd=repo)
    assert result.code == 1
    assert result.error_line.startswith("Not a directory: ")


def test_stage_without_a_run_names_the_command(repo: Path) -> None:
    """issue 10: the message said "stage 'this stage' needs a run"."""
    shutil.rmtree(repo / "runs")
    result = tango_here("train", "projects/tiny", cwd=repo)
    refused(result, "project tiny has no run yet; start one with `tango run projects/tiny`")


def test_garbage_onnx_with_a_matching_manifest_is_one_line(repo: Path) -> None:
    """issue 10: random bytes in export/model.onnx gave a traceback (here the manifest was
    forged to match, so only the engine can tell)."""
    onnx = _run(repo) / "export" / "model.onnx"
    onnx.write_bytes(os.urandom(3000))
    manifest = _run(repo) / "export" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["outputs"]["onnx"]["sha256"] = _sha(onnx)
    manifest.write_text(json.dumps(data))
    result = tango_here("compile", "projects/tiny", cwd=repo)
    assert result.code == 1
    assert result.error_line.startswith(f"{_shown(onnx, repo)}: not a readable ONNX model (")


def test_huge_planted_hash_record_is_not_read_whole(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / MARKER
    last = _interrupt_training(repo)
    _evil_pickle(last, marker)
    record = last.parent / "last.pt.sha256"
    with open(record, "wb") as handle:
        handle.write(b"\xff" * 10)
        handle.truncate(4 * 1024**3)  # sparse: 4 GiB to a reader, nothing on disk
    result = tango("train", "projects/tiny", cwd=repo)
    refused(
        result,
        f"{_shown(last, repo)}: no recorded sha256 beside it, so it was not written "
        "by this run; delete it to train from the start",
    )
    assert not marker.exists()
