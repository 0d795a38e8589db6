"""Checkpoints that are only ever loaded as data, and only if they are the ones we wrote.

A checkpoint of an interrupted run travels with the run folder (CI artifacts, copies), so a
planted ``last.pt`` must neither run code nor be trained on silently:

- every load is ``torch.load(weights_only=True)``: tensors and plain containers, no pickled
  code (ultralytics checkpoints go through the allow-list in ``tango_ci.detection.weights``);
- every save records the file's sha256 in ``<name>.sha256`` beside it; a load refuses a file
  whose hash is not recorded. The record is written before the file is swapped in and lists
  both the new and the previous hash, so a kill at any moment still leaves a loadable pair.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tango_ci.exceptions import TangoError
from tango_ci.rundir import display, file_sha256, one_line_reason


class CheckpointError(TangoError):
    """A checkpoint is unreadable, not ours, or holds more than tensors."""


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def recorded_hashes(path: Path) -> list[str]:
    record = _record_path(path)
    if not record.is_file():  # a planted FIFO would block a read
        return []
    try:  # two hashes at most: never read more than that from a planted file
        with open(record, "rb") as handle:
            text = handle.read(1000).decode("ascii")
    except (OSError, UnicodeDecodeError):
        return []
    return [line.strip() for line in text.splitlines() if len(line.strip()) == 64]


def _write_record(path: Path, hashes: list[str]) -> None:
    record = _record_path(path)
    partial = record.with_name(record.name + ".partial")
    partial.write_text("".join(f"{h}\n" for h in hashes), encoding="ascii")
    os.replace(partial, record)


def record(path: Path) -> str:
    """Record the hash of ``path``, written by someone else (ultralytics' trainer)."""
    digest = file_sha256(path)
    _write_record(path, [digest])
    return digest


def save(obj: Any, path: Path) -> None:
    """``torch.save`` atomically, with the hash recorded first (see the module docstring)."""
    import torch

    partial = path.with_name(path.name + ".partial")
    torch.save(obj, partial)
    digest = file_sha256(partial)
    previous = recorded_hashes(path)[:1] if path.exists() else []
    _write_record(path, [digest, *previous])
    os.replace(partial, path)
    _write_record(path, [digest])


def verify(path: Path) -> None:
    """Refuse ``path`` unless its sha256 is the one recorded when it was saved."""
    expected = recorded_hashes(path)
    if not expected:
        raise CheckpointError(
            f"{display(path)}: no recorded sha256 beside it, so it was not "
            "written by this run; delete it to train from the start"
        )
    actual = file_sha256(path)
    if actual not in expected:
        raise CheckpointError(
            f"{display(path)}: sha256 {actual[:16]}… differs from "
            f"{expected[0][:16]}… recorded when it was saved; delete it to "
            "train from the start"
        )


def load(path: Path, *, check: bool = True) -> Any:
    """Tensors and plain containers from ``path``; never unpickles code."""
    import pickle

    import torch

    if check:
        verify(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise CheckpointError(
            f"{display(path)}: not loadable as plain weights ({refusal_reason(exc)})"
        ) from None


def refusal_reason(exc: BaseException) -> str:
    """torch's long weights-only message, cut to the global it refused (or its first line)."""
    found = re.search(r"(?:unsupported|Unsupported global:) GLOBAL ([\w.]+)", str(exc))
    if found:
        return f"it names {found.group(1)}, which plain weights never hold"
    return one_line_reason(exc)
