"""Artifacts in the DVC remote, by content hash, with the real ``dvc`` command.

Each push or pull works in a scratch DVC project (``dvc init --no-scm``) that uses the
repository's remote, so the repository's working tree is never changed. An artifact is
addressed by DVC's directory hash (``md5`` ending in ``.dir``); on pull, every file is also
checked against the sha256 recorded when it was pushed, so an altered remote copy is refused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from tango_ci.exceptions import TangoError
from tango_ci.rundir import file_sha256


class HashMismatch(TangoError):
    _template = ("{name}: {file} from the DVC remote has sha256 {actual}, but the registry "
                 "recorded {expected}; the remote copy was altered. Nothing was written to "
                 "{destination}")


def run_dvc(cwd: Path, *args: str) -> str:
    """``dvc ARGS`` in ``cwd``; its stdout, or a TangoError with DVC's last line."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1", COLUMNS="1000")  # no wrapped lines
    command = [sys.executable, "-m", "dvc", *args]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise TangoError(f"dvc {' '.join(args[:2])} failed: {lines[-1] if lines else 'no output'}")
    return result.stdout


def remote_url(repo_root: Path, remote: str | None = None) -> str:
    """The URL of ``remote`` (default: the repository's default remote), local paths absolute."""
    if not (repo_root / ".dvc").is_dir():
        raise TangoError(f"{repo_root} is not a DVC repository (no .dvc folder); run `dvc init` "
                         "and `dvc remote add -d NAME URL`")
    name = remote or run_dvc(repo_root, "remote", "default").strip()
    if not name:
        raise TangoError("the repository has no default DVC remote; add one with "
                         "`dvc remote add -d local /path/to/storage`")
    try:
        url = run_dvc(repo_root, "config", f"remote.{name}.url").strip()
    except TangoError:
        raise TangoError(f"DVC remote '{name}' has no url in {repo_root}/.dvc/config") from None
    if "://" not in url and not os.path.isabs(url):  # relative to .dvc/
        url = str((repo_root / ".dvc" / url).resolve())
    return url


def tree_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): file_sha256(p)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def tree_digest(files: dict[str, str]) -> str:
    blob = "".join(f"{path}\0{digest}\n" for path, digest in sorted(files.items()))
    return hashlib.sha256(blob.encode()).hexdigest()


def _scratch(work: Path, url: str) -> None:
    run_dvc(work, "init", "--no-scm", "-q")
    run_dvc(work, "remote", "add", "-d", "store", url)


def push_dir(folder: Path, url: str) -> dict:
    """Push ``folder`` to the remote at ``url``; returns where it lives and its hashes."""
    files = tree_hashes(folder)
    if not files:
        raise TangoError(f"{folder} holds no files to push")
    with tempfile.TemporaryDirectory(prefix="tango-dvc-") as tmp:
        work = Path(tmp)
        _scratch(work, url)
        shutil.copytree(folder, work / "artifact")
        run_dvc(work, "add", "-q", "artifact")
        run_dvc(work, "push", "-q")
        out = yaml.safe_load((work / "artifact.dvc").read_text())["outs"][0]
    return {"remote": url, "md5": out["md5"], "size": out.get("size"),
            "nfiles": out.get("nfiles"), "files": files, "sha256": tree_digest(files)}


def pull_dir(record: dict, destination: Path, *, name: str = "artifact") -> dict[str, str]:
    """Fetch the artifact ``record`` describes into ``destination`` (new or empty), verified."""
    destination = Path(destination)
    if destination.exists() and any(destination.iterdir()):
        raise TangoError(f"{destination} exists and is not empty; pull into a new folder")
    with tempfile.TemporaryDirectory(prefix="tango-dvc-") as tmp:
        work = Path(tmp)
        _scratch(work, record["remote"])
        pointer = {"outs": [{"md5": record["md5"], "path": "artifact", "hash": "md5"}]}
        (work / "artifact.dvc").write_text(yaml.safe_dump(pointer))
        run_dvc(work, "pull", "-q", "artifact.dvc")
        got = tree_hashes(work / "artifact")
        for path, expected in sorted(record["files"].items()):
            actual = got.get(path)
            if actual != expected:
                raise HashMismatch(name=name, file=path, actual=actual or "(missing)",
                                   expected=expected, destination=destination)
        extra = sorted(set(got) - set(record["files"]))
        if extra:
            raise TangoError(f"{name}: the DVC remote copy holds files the registry does not "
                             f"know ({', '.join(extra)}); nothing was written to {destination}")
        destination.mkdir(parents=True, exist_ok=True)
        for path in got:
            target = destination / path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(work / "artifact" / path, target)
    return got


def track(repo_root: Path, data: Path) -> Path:
    """`dvc add` a project's data folder and push it; returns the pointer file to commit."""
    data = Path(data).resolve()
    if not data.exists():
        raise TangoError(f"{data} does not exist; nothing to track")
    remote_url(repo_root)  # a clear error when no remote is configured
    run_dvc(repo_root, "add", "-q", str(data))
    pointer = data.with_name(data.name + ".dvc")
    run_dvc(repo_root, "push", "-q", str(pointer))
    return pointer


def pull_pointers(repo_root: Path, folder: Path) -> list[Path]:
    """`dvc pull` every pointer file (``*.dvc``) under ``folder``; returns them."""
    pointers = sorted(Path(folder).rglob("*.dvc"))
    for pointer in pointers:
        run_dvc(repo_root, "pull", "-q", str(pointer))
    return pointers
