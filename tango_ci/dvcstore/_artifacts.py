"""Artifacts pushed to the DVC remote and pulled back, every file verified before it lands.

See :mod:`tango_ci.dvcstore` for the steps of a pull.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import yaml

from tango_ci.dvcstore._dvc import cache_object, regular_files, run_dvc, tree_digest, tree_hashes
from tango_ci.exceptions import TangoError
from tango_ci.registry.records import (
    MAX_FILES,
    MAX_LISTING_BYTES,
    MD5,
    Shape,
    UntrustedDataError,
    check_artifact,
    parse_json,
    safe_relpath,
)


class HashMismatch(TangoError):
    _template = (
        "{name}: {file} from the DVC remote has sha256 {actual}, but the registry "
        "recorded {expected}; the remote copy was altered. Nothing was written to "
        "{destination}"
    )


class ListingMismatch(TangoError):
    _template = (
        "{name}: the DVC remote's listing {listing} has md5 {actual}, but the "
        "registry recorded {expected}; the remote copy was altered. Nothing was "
        "written to {destination}"
    )


def _scratch(work: Path, url: str) -> Path:
    """A DVC project in ``work`` using ``url``; returns its cache (never a configured one)."""
    run_dvc(work, "init", "--no-scm", "-q")
    run_dvc(work, "remote", "add", "-d", "store", url)
    cache = work / ".dvc" / "cache"
    (work / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {cache}\n")
    return cache


def _object_url(url: str, md5: str) -> str:
    if "://" in url:
        return f"{url.rstrip('/')}/files/md5/{md5[:2]}/{md5[2:]}"
    return str(cache_object(Path(url), md5))


def push_dir(folder: Path, url: str, only: Iterable[str] | None = None) -> dict:
    """Push ``folder`` (or only the files ``only`` names in it) to the remote at ``url``;
    returns where it lives and the hashes of what was pushed."""
    if only is None:  # every file (a link anywhere is refused)
        only = [path.relative_to(folder).as_posix() for path in regular_files(folder)]
    with tempfile.TemporaryDirectory(prefix="tango-dvc-") as tmp:
        work = Path(tmp)
        copy = work / "artifact"
        for relpath in sorted(only):
            safe_relpath(relpath, str(folder))
            (copy / relpath).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(folder / relpath, copy / relpath, follow_symlinks=False)
        files = tree_hashes(copy) if copy.is_dir() else {}  # what is pushed, as it is pushed
        if not files:
            raise TangoError(f"{folder} holds no files to push")
        _scratch(work, url)
        run_dvc(work, "add", "-q", "artifact")
        run_dvc(work, "push", "-q")
        out = yaml.safe_load((work / "artifact.dvc").read_text())["outs"][0]
    return {
        "remote": url,
        "md5": out["md5"],
        "size": out.get("size"),
        "nfiles": out.get("nfiles"),
        "files": files,
        "sha256": tree_digest(files),
    }


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
        source = cache_object(Path(url), md5)
        if source.is_file() and source.stat().st_size > MAX_LISTING_BYTES:
            raise UntrustedDataError(
                f"{what} is {source.stat().st_size} bytes, more than the "
                f"{MAX_LISTING_BYTES} allowed; nothing was written to "
                f"{destination}"
            )
    local = work / "listing.json"
    try:
        run_dvc(work, "get-url", _object_url(url, md5), str(local))
    except TangoError as error:
        raise TangoError(
            f"{name}: cannot download its listing {md5} from the DVC remote "
            f"{url} ({error}); nothing was written to {destination}"
        ) from None
    if local.is_symlink() or not local.is_file():
        raise UntrustedDataError(f"{what} is not a file; nothing was written to {destination}")
    data = local.read_bytes()
    entries = parse_json(data, what, MAX_LISTING_BYTES)
    rows = Shape(entries, what).list(MAX_FILES)
    expected_count = record.get("nfiles") or len(record["files"])
    if len(rows) != expected_count:
        raise UntrustedDataError(
            f"{what} lists {len(rows)} file(s), but the registry recorded "
            f"{expected_count}; nothing was written to {destination}"
        )
    listed: list[tuple[str, str]] = []
    for row in rows:
        relpath = safe_relpath(row.field("relpath").string(), what)
        listed.append((relpath, row.field("md5").string(MD5, "an md5 (32 hex digits)")))
    actual = hashlib.md5(data).hexdigest()
    if actual != md5[: -len(".dir")]:
        raise ListingMismatch(
            name=name,
            listing=md5,
            actual=actual,
            expected=md5[: -len(".dir")],
            destination=destination,
        )
    paths = [p for p, _ in listed]
    if sorted(paths) != sorted(record["files"]) or len(set(paths)) != len(paths):
        unknown = sorted(set(paths) - set(record["files"])) or ["(duplicates)"]
        missing = sorted(set(record["files"]) - set(paths))
        raise UntrustedDataError(
            f"{what} does not match the registry's record (not recorded: "
            f"{', '.join(unknown) if set(paths) - set(record['files']) else 'none'}; "
            f"missing: {', '.join(missing) or 'none'}); nothing was written to {destination}"
        )
    target = cache_object(work / ".dvc" / "cache", md5)  # fetch uses this copy, not a newer one
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return listed


def _check_destination(destination: Path) -> None:
    if destination.is_symlink():
        raise TangoError(f"{destination} is a symbolic link; pull into a new or empty folder")
    if destination.exists() and not destination.is_dir():
        raise TangoError(
            f"{destination} exists and is not a folder; pull into a new or empty folder"
        )
    if destination.exists() and any(destination.iterdir()):
        raise TangoError(f"{destination} exists and is not empty; pull into a new folder")


def _verify(paths: dict[str, Path], record: dict, name: str, destination: Path) -> None:
    """Each file's size and sha256 against the record (the total bytes it says, at most)."""
    budget = record.get("size")
    budget = budget if isinstance(budget, int) else 1 << 40
    for relpath, path in sorted(paths.items()):
        if path.is_symlink() or not path.is_file():
            raise UntrustedDataError(
                f"{name}: {relpath} did not arrive from the DVC remote as "
                f"a regular file; nothing was written to {destination}"
            )
        actual, size = _hash_limited(path, budget)
        if size > budget:
            raise UntrustedDataError(
                f"{name}: the DVC remote's copy holds more than the "
                f"{record.get('size')} bytes the registry recorded "
                f"(at {relpath}); nothing was written to {destination}"
            )
        budget -= size
        if actual != record["files"][relpath]:
            raise HashMismatch(
                name=name,
                file=relpath,
                actual=actual,
                expected=record["files"][relpath],
                destination=destination,
            )


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
            raise UntrustedDataError(
                f"{name}: the staging folder {staging} changed while it "
                f"was written; nothing was written to {destination}"
            )
        _verify(staged, record, name, destination)
        mask = os.umask(0)
        os.umask(mask)
        staging.chmod(0o777 & ~mask)
        try:
            os.rename(staging, destination)
        except OSError as error:
            raise TangoError(
                f"cannot move the verified artifact into {destination} "
                f"({error.strerror}); nothing was written there"
            ) from None
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
        sources = {relpath: cache_object(cache, md5) for relpath, md5 in listed}
        _verify(sources, record, name, destination)
        _place(sources, record, name, destination)
    return dict(record["files"])
