"""The registry on real git, GTO and DVC: bumps, rollback, a promotion race, a tampered pull."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tango_ci.dvcstore import HashMismatch, pull_dir, push_dir
from tango_ci.exceptions import TangoError
from tango_ci.registry import PromotionConflict, Registry, bump
from tests.conftest import git

NAME = "shapes-cpu"


def tags(root: Path) -> dict[str, str]:
    """tag -> object id, on a repository or a bare remote."""
    out = git(root, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/tags")
    return dict(line.split() for line in out.splitlines())


@pytest.fixture
def origin(tmp_path: Path) -> tuple[Path, Path, dict]:
    """A bare origin, a clone with three commits, and an artifact in a DVC remote."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    clone = tmp_path / "a"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    for index in range(3):
        git(
            clone,
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            f"c{index}",
        )
    git(clone, "push", "-q", "origin", "main")
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "model.onnx").write_bytes(os.urandom(2048))
    (artifact / "artifact.json").write_text(json.dumps({"engine": "onnxruntime"}))
    stored = push_dir(artifact, str(tmp_path / "dvc-remote"))
    return bare, clone, stored


def record(stored: dict, architecture: str = "resnet-s", classes=("a", "b")) -> dict:
    return {
        "project": "shapes",
        "target": "cpu",
        "run": "r1",
        "task": "classification",
        "classes": list(classes),
        "architecture": architecture,
        "engine": "onnxruntime",
        "precision": "fp32",
        "metrics": {"accuracy": 0.9},
        "artifact": stored,
    }


def test_version_bumps_follow_the_rules() -> None:
    base = {"task": "classification", "classes": ["a", "b"], "architecture": "resnet-s"}
    previous = {"version": "v1.2.3", "record": base}
    assert bump(None, base)[0] == "v1.0.0"
    assert bump(previous, dict(base))[0] == "v1.2.4"
    assert bump(previous, base | {"architecture": "resnet-m"})[0] == "v1.3.0"
    assert bump(previous, base | {"classes": ["a", "b", "c"]})[0] == "v2.0.0"
    assert bump(previous, base | {"task": "detection"})[0] == "v2.0.0"


def test_rollback_is_a_new_tag_and_gto_agrees(origin) -> None:
    bare, clone, stored = origin
    registry = Registry(clone)
    assert registry.register(NAME, record(stored), ref="HEAD~2")[0] == "v1.0.0"
    registry.promote(NAME, "v1.0.0")
    assert registry.register(NAME, record(stored), ref="HEAD~1")[0] == "v1.0.1"
    registry.promote(NAME, "v1.0.1")
    git(clone, "push", "-q", "origin", "--tags")
    before = tags(bare)

    result = subprocess.run(
        [sys.executable, "-m", "tango_ci", "rollback", NAME],
        cwd=clone,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert f"{NAME}: prod v1.0.1 -> v1.0.0 ({NAME}#prod#3)" in result.stderr
    after = tags(bare)
    assert {t: after[t] for t in before} == before  # nothing deleted or moved
    assert set(after) - set(before) == {f"{NAME}#prod#3"}
    assert registry.stage_version(NAME, "prod") == "v1.0.0"

    gto = subprocess.run(
        [str(Path(sys.executable).parent / "gto"), "show", "--json"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    )
    ours = subprocess.run(
        [sys.executable, "-m", "tango_ci", "registry", "ls", "--json"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = json.loads(gto.stdout)[NAME]
    mine = json.loads(ours.stdout)[0]
    assert (
        (mine["latest"], mine["stages"])
        == (theirs["version"], theirs["stage"])
        == ("v1.0.1", {"prod": "v1.0.0"})
    )


def test_a_second_concurrent_promotion_fails_clearly(origin, tmp_path: Path) -> None:
    bare, clone, stored = origin
    registry = Registry(clone)
    registry.register(NAME, record(stored), ref="HEAD~2")
    registry.promote(NAME, "v1.0.0")
    registry.register(NAME, record(stored, "resnet-m"), ref="HEAD~1")
    registry.register(NAME, record(stored, "resnet-m"), ref="HEAD")
    git(clone, "push", "-q", "origin", "--tags")
    other = tmp_path / "b"
    git(tmp_path, "clone", "-q", str(bare), str(other))  # a second person, same state

    registry.promote(NAME, "v1.1.0")  # the first promotion wins the race
    winners = tags(bare)
    with pytest.raises(PromotionConflict) as caught:
        # the second one had looked at the registry before the first was pushed
        Registry(other).promote(NAME, "v1.1.1", fetch=False)
    assert f"{NAME}#prod#2 already there" in str(caught.value)
    assert "was not changed" in str(caught.value)
    assert tags(bare) == winners  # the winner's tags stand, untouched
    git(other, "fetch", "-q", "origin", "refs/tags/*:refs/tags/*")  # and a fetch just works
    assert tags(other)[f"{NAME}#prod#2"] == winners[f"{NAME}#prod#2"]


def test_pull_verifies_hashes_and_refuses_a_tampered_copy(origin, tmp_path: Path) -> None:
    _, clone, stored = origin
    registry = Registry(clone)
    registry.register(NAME, record(stored), ref="HEAD")
    registry.promote(NAME, "v1.0.0", push=False)

    result = subprocess.run(
        [sys.executable, "-m", "tango_ci", "pull", f"{NAME}#prod", "--to", str(tmp_path / "got")],
        cwd=clone,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "got" / "model.onnx").read_bytes() == (
        tmp_path / "artifact" / "model.onnx"
    ).read_bytes()

    remote = Path(stored["remote"])
    victim = next(
        p
        for p in (remote / "files" / "md5").rglob("*")
        if p.is_file() and not p.name.endswith(".dir") and p.stat().st_size == 2048
    )
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    result = subprocess.run(
        [sys.executable, "-m", "tango_ci", "pull", f"{NAME}@v1.0.0", "--to", str(tmp_path / "bad")],
        cwd=clone,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "model.onnx from the DVC remote has sha256" in result.stderr
    assert "altered" in result.stderr
    assert not (tmp_path / "bad").exists()
    with pytest.raises(HashMismatch):
        pull_dir(stored, tmp_path / "bad2")


def test_rolling_back_twice_goes_two_versions_back(origin) -> None:
    _, clone, stored = origin
    registry = Registry(clone)
    for ref, version in (("HEAD~2", "v1.0.0"), ("HEAD~1", "v1.0.1"), ("HEAD", "v1.0.2")):
        registry.register(NAME, record(stored), ref=ref)
        registry.promote(NAME, version, push=False)
    assert registry.rollback(NAME, push=False)[:2] == ("v1.0.2", "v1.0.1")
    assert registry.rollback(NAME, push=False)[:2] == ("v1.0.1", "v1.0.0")
    with pytest.raises(TangoError, match="nothing to roll back to"):
        registry.rollback(NAME, push=False)
    assert registry.stage_version(NAME, "prod") == "v1.0.0"


def test_an_empty_registry_says_how_versions_get_there(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    result = subprocess.run(
        [sys.executable, "-m", "tango_ci", "registry", "ls"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "the registry is empty: `tango ci promote` registers" in " ".join(result.stderr.split())
    assert "name" not in result.stdout  # no empty table
