"""A project's data under DVC: tracked with ``dvc add``, pulled through its pointer files.

A pointer file (``*.dvc``) comes with a pushed branch, so it is data: it may hold outputs and
their hashes only (``wdir``, ``deps`` or an output's ``remote`` would move where DVC reads or
writes), its outputs must stay inside the work tree, and a folder's listing must keep every
file inside that folder, before ``dvc checkout`` writes anything.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import yaml

from tango_ci.dvcstore._dvc import cache_object, remote_url, run_dvc
from tango_ci.exceptions import TangoError
from tango_ci.printable import printable
from tango_ci.registry.records import (
    DIR_MD5,
    MAX_FILES,
    MAX_LISTING_BYTES,
    MD5,
    Shape,
    UntrustedDataError,
    parse_json,
    safe_relpath,
)

MAX_POINTER_BYTES = 2**20
# what `dvc add` and a person editing a pointer write; wdir, deps (where DVC reads or writes)
# and an output's remote or cloud version (where it downloads from) are refused
POINTER_KEYS = ("outs", "md5", "frozen", "meta", "desc")
OUTPUT_KEYS = (
    *("path", "md5", "size", "nfiles", "hash", "isexec"),
    *("desc", "type", "labels", "meta", "cache", "persist", "push"),
)


def track(repo_root: Path, data: Path) -> tuple[Path, list[Path]]:
    """`dvc add` a project's data folder and push it; returns its pointer file and the files
    `dvc add` created or changed (the pointer, and the ``.gitignore`` beside the folder unless
    it ignored the folder already), which are the ones to commit."""
    data = Path(data).resolve()
    if not data.exists():
        raise TangoError(f"{data} does not exist; nothing to track")
    remote_url(repo_root)  # a clear error when no remote is configured
    pointer = data.with_name(data.name + ".dvc")
    # the files dvc add may write: what they held before tells what it wrote
    written = [pointer, data.with_name(".gitignore")]
    before = [_content(path) for path in written]
    run_dvc(repo_root, "add", "-q", str(data))
    run_dvc(repo_root, "push", "-q", str(pointer))
    changed = [path for path, old in zip(written, before, strict=True) if _content(path) != old]
    return pointer, changed


def _content(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:  # missing: written if it is there after `dvc add`
        return None


def _pointer_outputs(root: Path, pointer: Path) -> list[tuple[Path, str]]:
    """(output path, md5) of a ``*.dvc`` pointer, each output a real folder inside ``root``."""
    real = Path(os.path.realpath(pointer.parent)) / pointer.name
    if not real.is_relative_to(root):
        raise UntrustedDataError(
            f"{pointer} is not inside the repository {root} (a symbolic "
            "link on the way?); it was not pulled"
        )
    pointer, shown = real, real.relative_to(root).as_posix()
    info = pointer.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        raise UntrustedDataError(f"{shown} is not a regular file; DVC pointers are not followed")
    if info.st_size > MAX_POINTER_BYTES:
        raise UntrustedDataError(
            f"{shown} is {info.st_size} bytes, more than the {MAX_POINTER_BYTES} allowed"
        )
    try:
        data = yaml.safe_load(pointer.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise UntrustedDataError(f"{shown} is not valid YAML ({error})".splitlines()[0]) from None
    outputs = []
    document = Shape(data, shown)
    _only_keys(document, POINTER_KEYS)
    for out in document.field("outs").list(16):
        _only_keys(out, OUTPUT_KEYS)
        relative = out.field("path").string()
        md5 = out.field("md5").string()
        if not (MD5.match(md5) or DIR_MD5.match(md5)):
            raise UntrustedDataError(
                f"{shown}: field '{out.path}.md5' must be an md5, not '{md5[:80]}'"
            )
        target = Path(os.path.normpath(pointer.parent / relative))
        if (
            os.path.isabs(relative)
            or not target.is_relative_to(root)
            or target == root
            or target.relative_to(root).parts[0] in (".git", ".dvc")
        ):
            raise UntrustedDataError(
                f"{shown}: output '{relative[:80]}' is outside the "
                "repository's work tree; it was not pulled"
            )
        parts = target.relative_to(root).parts
        for depth in range(1, len(parts)):
            if (root.joinpath(*parts[:depth])).is_symlink():
                raise UntrustedDataError(
                    f"{shown}: {Path(*parts[:depth])} is a symbolic "
                    "link; DVC would write through it, so it was not "
                    "pulled"
                )
        if target.is_symlink() or (target.is_dir() and _holds_link(target)):
            raise UntrustedDataError(
                f"{shown}: {target.relative_to(root)} is or holds a "
                "symbolic link; DVC would write through it, so it was "
                "not pulled"
            )
        outputs.append((target, md5))
    return outputs


def _only_keys(shape: Shape, allowed: tuple[str, ...]) -> None:
    extra = sorted(str(key) for key in shape.object() if key not in allowed)
    if extra:
        raise UntrustedDataError(
            f"{shape.what}: {shape.where} has '{printable(extra[0][:40])}', which a data "
            f"pointer may not have (only {', '.join(allowed)}); it was not pulled"
        )


def _holds_link(folder: Path) -> bool:
    return any(
        Path(parent, name).is_symlink()
        for parent, dirs, files in os.walk(folder)
        for name in dirs + files
    )


def _check_listing(root: Path, pointer: Path, md5: str) -> None:
    """The cached ``.dir`` listing of a data pointer: its relpaths stay inside its folder."""
    cache = Path(run_dvc(root, "cache", "dir").strip())
    listing = cache_object(cache, md5)
    real = Path(os.path.realpath(pointer.parent)) / pointer.name
    shown = f"{real.relative_to(root).as_posix()}: the DVC remote's listing {md5}"
    if listing.is_symlink() or not listing.is_file():
        raise UntrustedDataError(f"{shown} is not in the DVC cache {cache} after a fetch")
    if listing.stat().st_size > MAX_LISTING_BYTES:
        raise UntrustedDataError(
            f"{shown} is {listing.stat().st_size} bytes, more than the {MAX_LISTING_BYTES} allowed"
        )
    data = listing.read_bytes()
    if hashlib.md5(data).hexdigest() != md5[: -len(".dir")]:
        raise UntrustedDataError(
            f"{shown} has md5 {hashlib.md5(data).hexdigest()}; the remote copy was altered"
        )
    for row in Shape(parse_json(data, shown, MAX_LISTING_BYTES), shown).list(10 * MAX_FILES):
        safe_relpath(row.field("relpath").string(), shown)
        row.field("md5").string(MD5, "an md5 (32 hex digits)")


def pull_pointers(repo_root: Path, folder: Path) -> list[Path]:
    """Fetch, check and check out every pointer file (``*.dvc``) under ``folder``.

    A pointer's outputs must be inside the work tree, not through a symbolic link, and a
    folder's listing must keep every file inside it: ``dvc checkout`` writes only after that.
    """
    root = Path(repo_root).resolve()
    dvc = root / ".dvc"
    if dvc.is_symlink() or (dvc.exists() and not dvc.is_dir()):
        raise UntrustedDataError(
            f"{dvc} is a symbolic link or not a folder; DVC would take its config and cache "
            "from there, so nothing was pulled"
        )
    pointers = sorted(
        Path(parent, name)
        for parent, _, files in os.walk(folder)
        for name in files
        if name.endswith(".dvc")
    )
    for pointer in pointers:
        outputs = _pointer_outputs(root, Path(os.path.abspath(pointer)))
        run_dvc(root, "fetch", "-q", str(pointer))
        for _, md5 in outputs:
            if md5.endswith(".dir"):
                _check_listing(root, pointer, md5)
        run_dvc(root, "checkout", "-q", str(pointer))
    return pointers
