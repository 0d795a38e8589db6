"""Artifacts in the DVC remote, by content hash, with the real ``dvc`` command.

Each push or pull works in a scratch DVC project (``dvc init --no-scm``) that uses the
repository's remote, so the repository's working tree is never changed. An artifact is
addressed by DVC's directory hash (``md5`` ending in ``.dir``).

The remote is untrusted (anyone who can write to the storage can change it), so a pull is
verified before anything is written where it was asked to go:

1. the directory listing (the ``.dir`` object) is downloaded alone, size-limited, and its md5
   compared with the registry's record; every ``relpath`` must be a normalised relative path,
   and the list of files must be exactly the record's;
2. that listing is put in the scratch cache and ``dvc fetch`` (never ``checkout``) brings the
   files into the scratch cache, where each one's size and sha256 are checked against the
   record;
3. only then are the files copied into a staging folder beside the destination, checked once
   more, and the folder renamed into place. On any failure the staging folder is removed and
   the destination is left as it was.

``dvc`` runs as ``python -I -m dvc`` so that a checkout it runs in is never on ``sys.path``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from tango_ci.exceptions import TangoError
from tango_ci.registry.records import (DIR_MD5, MAX_FILES, MAX_LISTING_BYTES, MD5, Shape,
                                       UntrustedDataError, check_artifact, parse_json,
                                       safe_relpath)
from tango_ci.rundir import file_sha256

MAX_POINTER_BYTES = 2**20


class HashMismatch(TangoError):
    _template = ("{name}: {file} from the DVC remote has sha256 {actual}, but the registry "
                 "recorded {expected}; the remote copy was altered. Nothing was written to "
                 "{destination}")


class ListingMismatch(TangoError):
    _template = ("{name}: the DVC remote's listing {listing} has md5 {actual}, but the "
                 "registry recorded {expected}; the remote copy was altered. Nothing was "
                 "written to {destination}")


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


def regular_files(folder: Path, what: str | None = None) -> list[Path]:
    """Every file under ``folder``, sorted; a link or special file anywhere is refused."""
    what = what or str(folder)
    found = []
    for parent, dirs, files in os.walk(folder, followlinks=False):
        for entry in sorted(dirs + files):
            path = Path(parent) / entry
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise UntrustedDataError(f"{what}: {path.relative_to(folder).as_posix()} is a "
                                         "symbolic link; an artifact holds regular files only")
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise UntrustedDataError(f"{what}: {path.relative_to(folder).as_posix()} is "
                                         "not a regular file")
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


def _scratch(work: Path, url: str) -> Path:
    """A DVC project in ``work`` using ``url``; returns its cache (never a configured one)."""
    run_dvc(work, "init", "--no-scm", "-q")
    run_dvc(work, "remote", "add", "-d", "store", url)
    cache = work / ".dvc" / "cache"
    (work / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {cache}\n")
    return cache


def _object(cache: Path, md5: str) -> Path:
    """Where DVC 3 keeps the object ``md5`` under a cache or local remote."""
    return cache / "files" / "md5" / md5[:2] / md5[2:]


def _object_url(url: str, md5: str) -> str:
    if "://" in url:
        return f"{url.rstrip('/')}/files/md5/{md5[:2]}/{md5[2:]}"
    return str(_object(Path(url), md5))


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


# ----------------------------------------------------------------------------- pull
def _hash_limited(path: Path, limit: int) -> tuple[str, int]:
    """sha256 and size of ``path``, reading at most ``limit`` + 1 bytes."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(min(1 << 20, limit + 1 - size)):
            digest.update(chunk)
            size += len(chunk)
            if size > limit:
                break
    return digest.hexdigest(), size


def _listing(work: Path, record: dict, name: str, destination: Path) -> list[tuple[str, str]]:
    """Download and check the ``.dir`` listing: [(relpath, md5)], exactly the record's files."""
    md5 = record["md5"]
    what = f"{name}: the DVC remote's listing {md5}"
    url = record["remote"]
    if "://" not in url:  # a local remote: refuse an absurd listing before copying it
        source = _object(Path(url), md5)
        if source.is_file() and source.stat().st_size > MAX_LISTING_BYTES:
            raise UntrustedDataError(f"{what} is {source.stat().st_size} bytes, more than the "
                                     f"{MAX_LISTING_BYTES} allowed; nothing was written to "
                                     f"{destination}")
    local = work / "listing.json"
    try:
        run_dvc(work, "get-url", _object_url(url, md5), str(local))
    except TangoError as error:
        raise TangoError(f"{name}: cannot download its listing {md5} from the DVC remote "
                         f"{url} ({error}); nothing was written to {destination}") from None
    if local.is_symlink() or not local.is_file():
        raise UntrustedDataError(f"{what} is not a file; nothing was written to {destination}")
    data = local.read_bytes()
    entries = parse_json(data, what, MAX_LISTING_BYTES)
    rows = Shape(entries, what).list(MAX_FILES)
    expected_count = record.get("nfiles") or len(record["files"])
    if len(rows) != expected_count:
        raise UntrustedDataError(f"{what} lists {len(rows)} file(s), but the registry recorded "
                                 f"{expected_count}; nothing was written to {destination}")
    listed: list[tuple[str, str]] = []
    for row in rows:
        relpath = safe_relpath(row.field("relpath").string(), what)
        listed.append((relpath, row.field("md5").string(MD5, "an md5 (32 hex digits)")))
    actual = hashlib.md5(data).hexdigest()
    if actual != md5[:-len(".dir")]:
        raise ListingMismatch(name=name, listing=md5, actual=actual,
                              expected=md5[:-len(".dir")], destination=destination)
    paths = [p for p, _ in listed]
    if sorted(paths) != sorted(record["files"]) or len(set(paths)) != len(paths):
        unknown = sorted(set(paths) - set(record["files"])) or ["(duplicates)"]
        missing = sorted(set(record["files"]) - set(paths))
        raise UntrustedDataError(
            f"{what} does not match the registry's record (not recorded: "
            f"{', '.join(unknown) if set(paths) - set(record['files']) else 'none'}; "
            f"missing: {', '.join(missing) or 'none'}); nothing was written to {destination}")
    target = _object(work / ".dvc" / "cache", md5)  # fetch uses this copy, not a newer one
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return listed


def _check_destination(destination: Path) -> None:
    if destination.is_symlink():
        raise TangoError(f"{destination} is a symbolic link; pull into a new or empty folder")
    if destination.exists() and not destination.is_dir():
        raise TangoError(f"{destination} exists and is not a folder; pull into a new or empty "
                         "folder")
    if destination.exists() and any(destination.iterdir()):
        raise TangoError(f"{destination} exists and is not empty; pull into a new folder")


def _verify(paths: dict[str, Path], record: dict, name: str, destination: Path) -> None:
    """Each file's size and sha256 against the record (the total bytes it says, at most)."""
    budget = record.get("size")
    budget = budget if isinstance(budget, int) else 1 << 40
    for relpath, path in sorted(paths.items()):
        if path.is_symlink() or not path.is_file():
            raise UntrustedDataError(f"{name}: {relpath} did not arrive from the DVC remote as "
                                     f"a regular file; nothing was written to {destination}")
        actual, size = _hash_limited(path, budget)
        if size > budget:
            raise UntrustedDataError(f"{name}: the DVC remote's copy holds more than the "
                                     f"{record.get('size')} bytes the registry recorded "
                                     f"(at {relpath}); nothing was written to {destination}")
        budget -= size
        if actual != record["files"][relpath]:
            raise HashMismatch(name=name, file=relpath, actual=actual,
                               expected=record["files"][relpath], destination=destination)


def _place(sources: dict[str, Path], record: dict, name: str, destination: Path) -> None:
    """Copy into a staging folder beside ``destination``, check again, rename into place."""
    parent = destination.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.tango-pull-", dir=parent))
    try:
        for relpath, source in sorted(sources.items()):
            target = staging / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(source, "rb") as reader, open(target, "xb") as writer:
                shutil.copyfileobj(reader, writer)
        staged = {p.relative_to(staging).as_posix(): p for p in regular_files(staging, name)}
        if sorted(staged) != sorted(sources):
            raise UntrustedDataError(f"{name}: the staging folder {staging} changed while it "
                                     f"was written; nothing was written to {destination}")
        _verify(staged, record, name, destination)
        mask = os.umask(0)
        os.umask(mask)
        staging.chmod(0o777 & ~mask)
        try:
            os.rename(staging, destination)
        except OSError as error:
            raise TangoError(f"cannot move the verified artifact into {destination} "
                             f"({error.strerror}); nothing was written there") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def pull_dir(record: dict, destination: Path, *, name: str = "artifact") -> dict[str, str]:
    """Fetch the artifact ``record`` describes into ``destination`` (new or empty), verified.

    Returns relpath -> sha256 of what was written.
    """
    destination = Path(os.path.abspath(destination))
    record = check_artifact(record, f"{name}: the registry's record")
    _check_destination(destination)
    with tempfile.TemporaryDirectory(prefix="tango-dvc-") as tmp:
        work = Path(tmp)
        cache = _scratch(work, record["remote"])
        listed = _listing(work, record, name, destination)
        pointer = {"outs": [{"md5": record["md5"], "path": "artifact", "hash": "md5"}]}
        (work / "artifact.dvc").write_text(yaml.safe_dump(pointer))
        try:
            run_dvc(work, "fetch", "-q", "artifact.dvc")
        except TangoError as error:
            raise TangoError(f"{name}: {error}; nothing was written to {destination}") from None
        sources = {relpath: _object(cache, md5) for relpath, md5 in listed}
        _verify(sources, record, name, destination)
        _place(sources, record, name, destination)
    return dict(record["files"])


# ----------------------------------------------------------------------------- project data
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


def _pointer_outputs(root: Path, pointer: Path) -> list[tuple[Path, str]]:
    """(output path, md5) of a ``*.dvc`` pointer, each output a real folder inside ``root``."""
    real = Path(os.path.realpath(pointer.parent)) / pointer.name
    if not real.is_relative_to(root):
        raise UntrustedDataError(f"{pointer} is not inside the repository {root} (a symbolic "
                                 "link on the way?); it was not pulled")
    pointer, shown = real, real.relative_to(root).as_posix()
    info = pointer.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        raise UntrustedDataError(f"{shown} is not a regular file; DVC pointers are not followed")
    if info.st_size > MAX_POINTER_BYTES:
        raise UntrustedDataError(f"{shown} is {info.st_size} bytes, more than the "
                                 f"{MAX_POINTER_BYTES} allowed")
    try:
        data = yaml.safe_load(pointer.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise UntrustedDataError(f"{shown} is not valid YAML ({error})".splitlines()[0]) \
            from None
    outputs = []
    for out in Shape(data, shown).field("outs").list(16):
        relative = out.field("path").string()
        md5 = out.field("md5").string()
        if not (MD5.match(md5) or DIR_MD5.match(md5)):
            raise UntrustedDataError(f"{shown}: field '{out.path}.md5' must be an md5, not "
                                     f"'{md5[:80]}'")
        target = Path(os.path.normpath(pointer.parent / relative))
        if os.path.isabs(relative) or not target.is_relative_to(root) or target == root \
                or target.relative_to(root).parts[0] in (".git", ".dvc"):
            raise UntrustedDataError(f"{shown}: output '{relative[:80]}' is outside the "
                                     "repository's work tree; it was not pulled")
        parts = target.relative_to(root).parts
        for depth in range(1, len(parts)):
            if (root.joinpath(*parts[:depth])).is_symlink():
                raise UntrustedDataError(f"{shown}: {Path(*parts[:depth])} is a symbolic "
                                         "link; DVC would write through it, so it was not "
                                         "pulled")
        if target.is_symlink() or (target.is_dir() and _holds_link(target)):
            raise UntrustedDataError(f"{shown}: {target.relative_to(root)} is or holds a "
                                     "symbolic link; DVC would write through it, so it was "
                                     "not pulled")
        outputs.append((target, md5))
    return outputs


def _holds_link(folder: Path) -> bool:
    return any(Path(parent, name).is_symlink()
               for parent, dirs, files in os.walk(folder) for name in dirs + files)


def _check_listing(root: Path, pointer: Path, md5: str) -> None:
    """The cached ``.dir`` listing of a data pointer: its relpaths stay inside its folder."""
    cache = Path(run_dvc(root, "cache", "dir").strip())
    listing = _object(cache, md5)
    real = Path(os.path.realpath(pointer.parent)) / pointer.name
    shown = f"{real.relative_to(root).as_posix()}: the DVC remote's listing {md5}"
    if listing.is_symlink() or not listing.is_file():
        raise UntrustedDataError(f"{shown} is not in the DVC cache {cache} after a fetch")
    if listing.stat().st_size > MAX_LISTING_BYTES:
        raise UntrustedDataError(f"{shown} is {listing.stat().st_size} bytes, more than the "
                                 f"{MAX_LISTING_BYTES} allowed")
    data = listing.read_bytes()
    if hashlib.md5(data).hexdigest() != md5[:-len(".dir")]:
        raise UntrustedDataError(f"{shown} has md5 {hashlib.md5(data).hexdigest()}; the "
                                 "remote copy was altered")
    for row in Shape(parse_json(data, shown, MAX_LISTING_BYTES), shown).list(10 * MAX_FILES):
        safe_relpath(row.field("relpath").string(), shown)
        row.field("md5").string(MD5, "an md5 (32 hex digits)")


def pull_pointers(repo_root: Path, folder: Path) -> list[Path]:
    """Fetch, check and check out every pointer file (``*.dvc``) under ``folder``.

    A pointer's outputs must be inside the work tree, not through a symbolic link, and a
    folder's listing must keep every file inside it: ``dvc checkout`` writes only after that.
    """
    root = Path(repo_root).resolve()
    pointers = sorted(Path(parent, name) for parent, _, files in os.walk(folder)
                      for name in files if name.endswith(".dvc"))
    for pointer in pointers:
        outputs = _pointer_outputs(root, Path(os.path.abspath(pointer)))
        run_dvc(root, "fetch", "-q", str(pointer))
        for _, md5 in outputs:
            if md5.endswith(".dir"):
                _check_listing(root, pointer, md5)
        run_dvc(root, "checkout", "-q", str(pointer))
    return pointers
