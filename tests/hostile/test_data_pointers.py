"""Data pointers (.dvc files) of a pushed branch are data: one that leads out of the work tree,
through a link, or lists files that climb out is refused before DVC reads it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.hostile.conftest import Tree, refused, tango_here
from tests.hostile.test_forge import ci_repo  # noqa: F401 (a fixture)


# ----------------------------------------------------------------------------- data pointers
def pointer(root: Path, name: str, path: str, md5: str = "0" * 32 + ".dir") -> None:
    (root / "projects" / "demo" / f"{name}.dvc").write_text(
        f"outs:\n- md5: {md5}\n  path: {path}\n  hash: md5\n"
    )


def test_a_data_pointer_outside_the_work_tree_is_refused(ci_repo: Path, outside: Path) -> None:
    pointer(ci_repo, "extra", "../../../outside/pwned")
    tree = Tree(ci_repo.parent)
    refused(
        tango_here("data", "pull", "projects/demo", cwd=ci_repo),
        "projects/demo/extra.dvc: output '../../../outside/pwned' is outside the "
        "repository's work tree; it was not pulled",
    )
    tree.assert_unchanged()


def test_a_data_pointer_through_a_link_is_refused(ci_repo: Path, outside: Path) -> None:
    (ci_repo / "projects" / "demo" / "extra").symlink_to(outside)
    pointer(ci_repo, "extra", "extra")
    tree = Tree(ci_repo.parent)
    refused(
        tango_here("data", "pull", "projects/demo", cwd=ci_repo),
        "projects/demo/extra.dvc: projects/demo/extra is or holds a symbolic link; DVC "
        "would write through it, so it was not pulled",
    )
    tree.assert_unchanged()


def test_a_data_pointer_that_is_not_a_mapping_is_refused(ci_repo: Path) -> None:
    (ci_repo / "projects" / "demo" / "extra.dvc").write_text("- just\n- a list\n")
    tree = Tree(ci_repo.parent)
    refused(
        tango_here("data", "pull", "projects/demo", cwd=ci_repo),
        "projects/demo/extra.dvc: the document must be an object, not a list",
    )
    tree.assert_unchanged()


def test_a_data_listing_whose_relpaths_climb_out_is_refused(ci_repo: Path, outside: Path) -> None:
    storage = ci_repo.parent / "storage"
    content = b"some data"
    blob = hashlib.md5(content).hexdigest()
    listing = json.dumps([{"md5": blob, "relpath": "../../../../outside/pwned"}]).encode()
    listing_md5 = hashlib.md5(listing).hexdigest()
    for name, data in ((blob, content), (listing_md5 + ".dir", listing)):
        target = storage / "files" / "md5" / name[:2] / name[2:]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    pointer(ci_repo, "extra", "extra", listing_md5 + ".dir")
    tree = Tree(outside)
    refused(
        tango_here("data", "pull", "projects/demo", cwd=ci_repo),
        f"projects/demo/extra.dvc: the DVC remote's listing {listing_md5}.dir: unsafe path "
        "'../../../../outside/pwned' (absolute, '..' or not normalised); nothing is "
        "written outside its folder",
    )
    tree.assert_unchanged()
    assert not (ci_repo / "projects" / "demo" / "extra").exists()


def test_a_pointer_dvc_add_writes_for_an_executable_file_is_read(tmp_path: Path) -> None:
    """`dvc add` writes `isexec: true` for an executable file (data copied from FAT or SMB
    mounts often is one): a plain pointer, never refused."""
    import subprocess
    import sys

    from tango_ci.dvcstore._data import _pointer_outputs
    from tests.conftest import git

    dvc = [sys.executable, "-m", "dvc"]
    git(tmp_path, "init", "-q")
    subprocess.run([*dvc, "init", "-q"], cwd=tmp_path, check=True)
    script = tmp_path / "data" / "run.sh"
    script.parent.mkdir()
    script.write_text("x")
    script.chmod(0o755)
    subprocess.run([*dvc, "add", "-q", "data/run.sh"], cwd=tmp_path, check=True)
    pointer = tmp_path / "data" / "run.sh.dvc"
    assert "isexec: true" in pointer.read_text()
    root = tmp_path.resolve()
    assert _pointer_outputs(root, root / "data" / "run.sh.dvc") == [
        (root / "data" / "run.sh", "9dd4e461268c8034f5c8564e155c67a6")
    ]
