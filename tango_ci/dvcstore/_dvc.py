"""The ``dvc`` command, the repository's remote, and the files of a folder with their hashes."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

from tango_ci.exceptions import TangoError
from tango_ci.registry.records import MAX_FILES, UntrustedDataError
from tango_ci.rundir import file_sha256


def python_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without the variables that make Python import other code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return env | (extra or {})


def run_dvc(cwd: Path, *args: str) -> str:
    """``dvc ARGS`` in ``cwd``; its stdout, or a TangoError with DVC's last line."""
    env = python_environment({"DVC_NO_ANALYTICS": "1", "COLUMNS": "1000"})  # no wrapped lines
    command = [sys.executable, "-I", "-m", "dvc", *args]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise TangoError(f"dvc {' '.join(args[:2])} failed: {lines[-1] if lines else 'no output'}")
    return result.stdout


def remote_url(repo_root: Path, remote: str | None = None) -> str:
    """The URL of ``remote`` (default: the repository's default remote), local paths absolute."""
    if not (repo_root / ".dvc").is_dir():
        raise TangoError(
            f"{repo_root} is not a DVC repository (no .dvc folder); run `dvc init` "
            "and `dvc remote add -d NAME URL`"
        )
    name = remote or run_dvc(repo_root, "remote", "default").strip()
    if not name:
        raise TangoError(
            "the repository has no default DVC remote; add one with "
            "`dvc remote add -d local /path/to/storage`"
        )
    try:
        url = run_dvc(repo_root, "config", f"remote.{name}.url").strip()
    except TangoError:
        raise TangoError(f"DVC remote '{name}' has no url in {repo_root}/.dvc/config") from None
    if "://" not in url and not os.path.isabs(url):  # relative to .dvc/
        url = str((repo_root / ".dvc" / url).resolve())
    return url


def regular_files(folder: Path, what: str | None = None) -> list[Path]:
    """Every file under ``folder``, sorted; a link or special file anywhere is refused."""
    what = what or str(folder)
    found = []
    for parent, dirs, files in os.walk(folder, followlinks=False):
        for entry in sorted(dirs + files):
            path = Path(parent) / entry
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise UntrustedDataError(
                    f"{what}: {path.relative_to(folder).as_posix()} is a "
                    "symbolic link; an artifact holds regular files only"
                )
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise UntrustedDataError(
                    f"{what}: {path.relative_to(folder).as_posix()} is not a regular file"
                )
            if stat.S_ISREG(mode):
                found.append(path)
        if len(found) > MAX_FILES:
            raise UntrustedDataError(f"{what} holds more than {MAX_FILES} files")
    return sorted(found)


def tree_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in regular_files(folder)}


def tree_digest(files: dict[str, str]) -> str:
    blob = "".join(f"{path}\0{digest}\n" for path, digest in sorted(files.items()))
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_object(cache: Path, md5: str) -> Path:
    """Where DVC 3 keeps the object ``md5`` under a cache or local remote."""
    return cache / "files" / "md5" / md5[:2] / md5[2:]
