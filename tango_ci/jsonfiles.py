"""JSON and record files as data: strict, size-limited, finite, written atomically.

Run folders, registry records and reports travel between machines, so every JSON file is read
with :func:`read_json` (a regular file of at most ``limit`` bytes, strict JSON without NaN or
duplicate keys) and written with :func:`write_json` (a temporary file renamed into place, so a
reader never sees half a file). Stage records (:mod:`tango_ci.contracts`) go through
:func:`write_record` and :func:`read_record`, which check their schema.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from tango_ci.contracts import R, Record
from tango_ci.exceptions import TangoError


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


MAX_JSON_BYTES = 64 * 1024 * 1024


class RunFileError(TangoError):
    """A file of a run folder is unreadable, too large, not JSON, or not what a stage wrote."""


def _finite(value: Any) -> Any:
    """NaN and infinity become null: strict JSON has neither, and other tools reject them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    """Write strict JSON atomically, so a kill never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(
        json.dumps(_finite(data), indent=2, sort_keys=False, default=str, allow_nan=False) + "\n"
    )
    os.replace(partial, path)


class _Constant:
    """A NaN or Infinity met while parsing: kept in place, so the refusal can say where."""

    def __init__(self, name: str) -> None:
        self.name = name


def non_finite_at(value: Any, where: str = "") -> tuple[str, str] | None:
    """(what, field path) of the first NaN or Infinity in ``value`` (a float in memory, or
    one met while parsing), or None when every number is finite."""
    if isinstance(value, _Constant):
        return value.name, where or "the top level"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value), where or "the top level"
    if isinstance(value, (dict, list)):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            found = non_finite_at(item, f"{where}/{key}" if where else str(key))
            if found:
                return found
    return None


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are unique: with a repeated key, readers disagree on its value."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        repeated = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"key {repeated[:40]!r} appears twice in one object")
    return result


def strict_json(data: str | bytes) -> Any:
    """JSON as the standard has it: no NaN or Infinity, no overflowing numbers, no key twice
    in one object, bounded nesting. Raises ``ValueError`` with a one-line reason (with the
    field of a NaN); callers name the source."""
    try:
        value = json.loads(
            data,
            parse_constant=_Constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
    try:
        constant = non_finite_at(value)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if constant is not None:
        raise ValueError(f"{constant[0]} at {constant[1]} is not a number JSON allows")
    return value


def read_json(path: Path, *, limit: int = MAX_JSON_BYTES) -> Any:
    """Strict JSON from a file that may come from elsewhere; one clear error for anything off."""
    path = Path(path)
    shown = display(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise RunFileError(f"{shown}: not a regular file")
        if size > limit:
            raise RunFileError(f"{shown}: {size} bytes, more than the {limit} a run file may have")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunFileError(f"{shown}: missing") from None
    except UnicodeDecodeError:
        raise RunFileError(f"{shown}: not UTF-8 text") from None
    except OSError as exc:
        raise RunFileError(f"{shown}: cannot read ({exc.strerror})") from None
    try:
        return strict_json(text)
    except ValueError as exc:
        raise RunFileError(f"{shown}: not valid JSON ({str(exc)[:120]})") from None


def write_record(folder: Path, record: Record) -> Path:
    """Write a stage record (:mod:`tango_ci.contracts`) as ``folder / record.FILE``."""
    path = folder / record.FILE
    write_json(path, record.to_json())
    return path


def read_record(kind: type[R], folder: Path) -> R:
    """Read and check the ``kind`` record in ``folder`` (strict, size-limited, schema-checked)."""
    path = folder / kind.FILE
    return kind.from_json(read_json(path), display(path))


def one_line_reason(exc: BaseException, limit: int = 160) -> str:
    """An exception as the reason part of one error line: its first line, cut."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def display(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(Path(path).absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
