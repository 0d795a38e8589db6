"""`tango pull`: a DVC remote anyone can write to never makes the pull write elsewhere.

The registry tag's record (file list, sha256 of each file, bytes, DVC listing hash) is the
trusted side; the DVC storage is the hostile one. Every refusal leaves the whole temporary
folder as it was: no file outside `--to`, nothing in `--to`, no staging folder left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tango_ci.dvcstore import push_dir
from tango_ci.registry import Registry
from tests.conftest import git
from tests.hostile.conftest import Tree, refused, tango_here

NAME = "demo-cpu"


@dataclass
class Promoted:
    root: Path  # the temporary folder holding everything below
    repo: Path  # a git repository whose registry has NAME@v1.0.0 in prod
    remote: Path  # the DVC storage the record points to
    stored: dict  # the artifact part of the record
    artifact: Path  # the folder that was pushed

    @property
    def listing(self) -> Path:
        md5 = self.stored["md5"]
        return self.remote / "files" / "md5" / md5[:2] / md5[2:]

    def object(self, relpath: str) -> Path:
        for entry in json.loads(self.listing.read_text()):
            if entry["relpath"] == relpath:
                md5 = entry["md5"]
                return self.remote / "files" / "md5" / md5[:2] / md5[2:]
        raise KeyError(relpath)

    def entries(self) -> list[dict]:
        return json.loads(self.listing.read_text())


def overwrite(path: Path, data: bytes) -> None:
    """Change a file of the DVC storage (DVC makes them read-only), as an attacker would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.chmod(0o644)
    path.write_bytes(data)


def add_object(remote: Path, data: bytes, suffix: str = "") -> str:
    """Put ``data`` in the storage under its real md5 (a listing that hashes right)."""
    md5 = hashlib.md5(data).hexdigest()
    overwrite(remote / "files" / "md5" / md5[:2] / (md5[2:] + suffix), data)
    return md5 + suffix


def record(stored: dict) -> dict:
    return {
        "project": "demo",
        "target": "cpu",
        "run": "r1",
        "task": "classification",
        "classes": ["a", "b"],
        "architecture": "resnet-xs",
        "engine": "onnxruntime",
        "precision": "fp32",
        "metrics": {"accuracy": 0.9},
        "artifact": stored,
    }


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """An artifact pushed once to a DVC storage that each test copies (and may spoil)."""
    root = tmp_path_factory.mktemp("pushed")
    artifact = root / "artifact"
    artifact.mkdir()
    (artifact / "model.onnx").write_bytes(os.urandom(4096))
    (artifact / "artifact.json").write_text(json.dumps({"engine": "onnxruntime"}))
    return artifact, push_dir(artifact, str(root / "dvc-remote"))


@pytest.fixture
def promoted(tmp_path: Path, pushed: tuple[Path, dict]) -> Promoted:
    artifact, pristine = pushed
    shutil.copytree(pristine["remote"], tmp_path / "dvc-remote")
    stored = pristine | {"remote": str(tmp_path / "dvc-remote")}
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "t")
    git(repo, "config", "user.email", "t@t")
    git(repo, "commit", "-q", "--allow-empty", "-m", "c0")
    registry = Registry(repo)
    registry.register(NAME, record(stored))
    registry.promote(NAME, "v1.0.0", push=False)
    return Promoted(tmp_path, repo, tmp_path / "dvc-remote", stored, artifact)


def pull(promoted: Promoted, reference: str = f"{NAME}#prod", to: str = "got"):
    return tango_here("pull", reference, "--to", str(promoted.root / to), cwd=promoted.repo)


def test_a_clean_pull_writes_the_destination_only(promoted: Promoted) -> None:
    tree = Tree(promoted.root)
    result = pull(promoted)
    assert result.code == 0, result.stderr
    assert "demo-cpu@v1.0.0 (onnxruntime fp32, run r1): 2 file(s)" in result.stderr
    for name in ("model.onnx", "artifact.json"):
        assert (promoted.root / "got" / name).read_bytes() == (
            promoted.artifact / name
        ).read_bytes()
    assert tree.changes() == sorted(["got", "got/model.onnx", "got/artifact.json"])


def test_a_pull_into_an_existing_empty_folder_fills_it(promoted: Promoted) -> None:
    (promoted.root / "empty").mkdir()
    result = pull(promoted, to="empty")
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in (promoted.root / "empty").iterdir()) == [
        "artifact.json",
        "model.onnx",
    ]
    assert not list(promoted.root.glob(".*tango-pull*"))


def test_a_listing_whose_relpaths_climb_out_is_refused(promoted: Promoted) -> None:
    """The reproduced defect: relpaths like ../../tmp/x in a replaced .dir object."""
    entries = promoted.entries()
    entries[1]["relpath"] = "../outside/pwned"
    overwrite(promoted.listing, json.dumps(entries).encode())
    tree = Tree(promoted.root)
    refused(
        pull(promoted),
        f"demo-cpu@v1.0.0: the DVC remote's listing "
        f"{promoted.stored['md5']}: unsafe path '../outside/pwned' "
        "(absolute, '..' or not normalised); nothing is written outside "
        "its folder",
    )
    tree.assert_unchanged()
    assert not (promoted.root / "outside" / "pwned").exists()


def test_an_absolute_relpath_in_the_listing_is_refused(promoted: Promoted) -> None:
    target = promoted.root / "outside" / "pwned"
    entries = promoted.entries()
    entries[0]["relpath"] = str(target)
    overwrite(promoted.listing, json.dumps(entries).encode())
    tree = Tree(promoted.root)
    shown = str(target) if len(str(target)) <= 80 else str(target)[:77] + "..."  # any tmp
    refused(
        pull(promoted),
        f"demo-cpu@v1.0.0: the DVC remote's listing "
        f"{promoted.stored['md5']}: unsafe path '{shown}' (absolute, '..' "
        "or not normalised); nothing is written outside its folder",
    )
    tree.assert_unchanged()


def test_a_listing_altered_with_safe_paths_is_refused_by_its_md5(promoted: Promoted) -> None:
    entries = promoted.entries()
    entries[0]["md5"], entries[1]["md5"] = entries[1]["md5"], entries[0]["md5"]  # swapped
    altered = json.dumps(entries).encode()
    overwrite(promoted.listing, altered)
    tree = Tree(promoted.root)
    expected = promoted.stored["md5"][:-4]
    refused(
        pull(promoted),
        f"demo-cpu@v1.0.0: the DVC remote's listing "
        f"{promoted.stored['md5']} has md5 {hashlib.md5(altered).hexdigest()}"
        f", but the registry recorded {expected}; the remote copy was "
        f"altered. Nothing was written to {promoted.root / 'got'}",
    )
    tree.assert_unchanged()


def test_a_listing_naming_other_files_than_the_record_is_refused(promoted: Promoted) -> None:
    """A listing that hashes right (a new object) but lists what the record does not."""
    entries = promoted.entries()
    entries[0]["relpath"] = "run.sh"
    md5 = add_object(promoted.remote, json.dumps(entries).encode(), ".dir")
    git(promoted.repo, "commit", "-q", "--allow-empty", "-m", "c1")
    Registry(promoted.repo).register(NAME, record(promoted.stored | {"md5": md5}), version="v1.0.1")
    tree = Tree(promoted.root)
    refused(
        pull(promoted, f"{NAME}@v1.0.1"),
        f"demo-cpu@v1.0.1: the DVC remote's listing {md5} does not match the registry's "
        "record (not recorded: run.sh; missing: artifact.json); nothing was written to "
        f"{promoted.root / 'got'}",
    )
    tree.assert_unchanged()


def test_a_tampered_file_is_refused_before_anything_is_written(promoted: Promoted) -> None:
    victim = promoted.object("model.onnx")
    data = bytearray(victim.read_bytes())
    data[7] ^= 0xFF
    overwrite(victim, bytes(data))
    tree = Tree(promoted.root)
    refused(
        pull(promoted),
        f"demo-cpu@v1.0.0: model.onnx from the DVC remote has sha256 "
        f"{hashlib.sha256(bytes(data)).hexdigest()}, but the registry "
        f"recorded {promoted.stored['files']['model.onnx']}; the remote "
        f"copy was altered. Nothing was written to {promoted.root / 'got'}",
    )
    tree.assert_unchanged()


def test_a_file_larger_than_the_record_says_is_refused(promoted: Promoted) -> None:
    overwrite(promoted.object("model.onnx"), b"\0" * (3 * 2**20))
    tree = Tree(promoted.root)
    refused(
        pull(promoted),
        f"demo-cpu@v1.0.0: the DVC remote's copy holds more than the "
        f"{promoted.stored['size']} bytes the registry recorded (at "
        f"model.onnx); nothing was written to {promoted.root / 'got'}",
    )
    tree.assert_unchanged()


def test_an_absurdly_large_listing_is_refused_unread(promoted: Promoted) -> None:
    overwrite(promoted.listing, b"[" + b" " * (9 * 2**20) + b"]")
    tree = Tree(promoted.root)
    refused(
        pull(promoted),
        f"demo-cpu@v1.0.0: the DVC remote's listing "
        f"{promoted.stored['md5']} is {9 * 2**20 + 2} bytes, more than the "
        f"{8 * 2**20} allowed; nothing was written to "
        f"{promoted.root / 'got'}",
    )
    tree.assert_unchanged()


def test_a_listing_with_absurdly_many_entries_is_refused(promoted: Promoted) -> None:
    entries = [{"md5": "0" * 32, "relpath": f"f{i}"} for i in range(10_001)]
    overwrite(promoted.listing, json.dumps(entries).encode())
    tree = Tree(promoted.root)
    refused(
        pull(promoted),
        f"demo-cpu@v1.0.0: the DVC remote's listing "
        f"{promoted.stored['md5']}: the document has 10001 entries, more "
        "than the 10000 allowed",
    )
    tree.assert_unchanged()


def test_a_listing_that_is_not_json_is_refused(promoted: Promoted) -> None:
    overwrite(promoted.listing, b"\x00\xffnot json")
    tree = Tree(promoted.root)
    refused(
        pull(promoted),
        f"demo-cpu@v1.0.0: the DVC remote's listing "
        f"{promoted.stored['md5']} is not valid JSON (Expecting value at "
        "line 1 column 1)",
    )
    tree.assert_unchanged()


def test_a_listing_missing_from_the_remote_is_one_line(promoted: Promoted) -> None:
    promoted.listing.chmod(0o644)
    promoted.listing.unlink()
    tree = Tree(promoted.root)
    result = pull(promoted)
    assert result.code == 1
    assert result.error_line.startswith(
        f"demo-cpu@v1.0.0: cannot download its listing "
        f"{promoted.stored['md5']} from the DVC remote "
    )
    assert result.error_line.endswith(f"nothing was written to {promoted.root / 'got'}")
    tree.assert_unchanged()


def test_pull_to_an_existing_file_is_one_line(promoted: Promoted) -> None:
    (promoted.root / "file.txt").write_text("mine\n")
    tree = Tree(promoted.root)
    refused(
        pull(promoted, to="file.txt"),
        f"{promoted.root / 'file.txt'} exists and is not a folder; pull into a new or empty folder",
    )
    tree.assert_unchanged()


def test_pull_to_a_folder_that_is_not_empty_is_refused(promoted: Promoted, outside) -> None:
    tree = Tree(promoted.root)
    refused(
        pull(promoted, to="outside"), f"{outside} exists and is not empty; pull into a new folder"
    )
    tree.assert_unchanged()


def test_pull_through_a_symbolic_link_is_refused(promoted: Promoted, outside) -> None:
    (outside / "empty").mkdir()
    (promoted.root / "link").symlink_to(outside / "empty")
    tree = Tree(promoted.root)
    refused(
        pull(promoted, to="link"),
        f"{promoted.root / 'link'} is a symbolic link; pull into a new or empty folder",
    )
    tree.assert_unchanged()
