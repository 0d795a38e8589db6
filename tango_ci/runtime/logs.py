"""Prediction logs: one row per answered request, in SQLite (WAL), committed before the answer
is sent, so a killed server loses no acknowledged record (a power cut may lose the last few).

Each row: time, model version and role (champion, challenger), latency, the outputs (JSON) and
a compact summary of the input (a content hash and fixed image statistics) that monitoring
compares over time. A file past ``max_bytes`` is closed and renamed ``NAME.YYYYmmddTHHMMSS``
(and a counter where two rotations share a second); ``tango logs export`` reads them all.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import refuse_constant

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    request TEXT NOT NULL,
    model_version TEXT NOT NULL,
    role TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    outputs TEXT NOT NULL,
    input_hash TEXT NOT NULL,
    input_summary TEXT NOT NULL
)
"""
COLUMNS = (
    "time",
    "request",
    "model_version",
    "role",
    "latency_ms",
    "outputs",
    "input_hash",
    "input_summary",
)


def input_summary(content: bytes | None, array: np.ndarray) -> tuple[str, dict]:
    """The input's sha256 (of the request's bytes, else of the array) and fixed statistics:
    shape, and per channel the mean and standard deviation (of the fitted image or tensor)."""
    digest = hashlib.sha256(content if content is not None else array.tobytes()).hexdigest()
    values = np.asarray(array, dtype=np.float64)
    if values.ndim == 3:  # an image, H x W x C
        channels = values.reshape(-1, values.shape[-1])
    elif values.ndim == 4:  # a tensor, N x C x H x W
        channels = values.transpose(1, 0, 2, 3).reshape(values.shape[1], -1).T
    else:
        channels = values.reshape(-1, 1)
    return digest, {
        "shape": list(values.shape),
        "mean": [round(float(v), 5) for v in channels.mean(0)],
        "std": [round(float(v), 5) for v in channels.std(0)],
    }


class PredictionLog:
    """Append-only prediction records, safe to share between the server's threads."""

    def __init__(self, path: Path | str, max_bytes: int = 256 * 2**20) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._connection = self._open()
        self._writes = 0

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit is in the log file before the answer goes out, so a killed
        # process loses nothing acknowledged; only a power cut can drop the last commits
        # (FULL would fsync every request: 5 ms each on this VM's disk)
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(SCHEMA)
        return connection

    def append(self, record: dict[str, Any]) -> None:
        row = tuple(
            json.dumps(record[c], separators=(",", ":"))
            if c in ("outputs", "input_summary")
            else record[c]
            for c in COLUMNS
        )
        with self._lock:
            self._connection.execute(
                f"INSERT INTO predictions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                row,
            )
            self._writes += 1
            if self._writes % 100 == 0 and self._size() > self.max_bytes:
                self._rotate()

    def _size(self) -> int:
        """Bytes on disk, the write-ahead log included (WAL keeps recent rows there)."""
        wal = self.path.with_name(self.path.name + "-wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    def _rotate(self) -> None:
        self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._connection.close()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.{stamp}")
        count = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.{stamp}.{count}")
            count += 1
        self.path.rename(target)
        for suffix in ("-wal", "-shm"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
        self._connection = self._open()

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class LogError(Exception):
    """A log file that is not what :class:`PredictionLog` writes; the message is one line
    naming the row (callers name the file)."""


#: the longest text or blob a row may hold: a logged answer is a few kilobytes
MAX_FIELD_BYTES = 16 * 2**20
TEXT = ("request", "model_version", "role", "input_hash")
NUMBERS = ("time", "latency_ms")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _field(column: str, value: Any) -> Any:
    """One column's value as the writer stored it, else ``ValueError`` saying what is off."""
    if column in TEXT:
        if not isinstance(value, str):
            raise ValueError(f"'{column}' is not text")
        return value
    if column in NUMBERS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"'{column}' is not a number")
        try:
            if not math.isfinite(float(value)):
                raise ValueError(f"'{column}' is not a finite number")
        except OverflowError:
            raise ValueError(f"'{column}' is not a finite number") from None
        return value
    if not isinstance(value, str):
        raise ValueError(f"'{column}' is not JSON text")
    try:
        return json.loads(value, parse_constant=refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError(f"'{column}' is nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"'{column}' is not JSON ({str(exc)[:80]})") from None


def _check_table(connection: sqlite3.Connection) -> None:
    """``predictions`` must be a plain table with the writer's columns: a view (or a generated
    column) would run whatever query the file's author wrote on every read."""
    found = connection.execute(
        "SELECT type, sql FROM sqlite_master WHERE lower(name) = 'predictions'"
    ).fetchall()
    if len(found) != 1 or found[0][0] != "table":
        raise LogError("not a prediction log: 'predictions' is missing or not a table")
    if not str(found[0][1] or "").lstrip().upper().startswith("CREATE TABLE"):
        raise LogError("not a prediction log: 'predictions' is not a plain table")
    columns = {row[1]: row[6] for row in connection.execute("PRAGMA table_xinfo(predictions)")}
    missing = [c for c in ("id", *COLUMNS) if c not in columns]
    if missing:
        raise LogError(f"not a prediction log: its table lacks {', '.join(missing)}")
    if any(hidden for hidden in columns.values()):
        raise LogError("not a prediction log: its table has generated or hidden columns")


class _Deadline:
    """A progress handler that stops a query once ``seconds`` pass without a row: a plain
    table gives its rows steadily, a crafted file may compute forever."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.row()

    def row(self) -> None:
        self.since = time.monotonic()

    def __call__(self) -> bool:
        return self.seconds is not None and time.monotonic() - self.since > self.seconds


def iter_records(
    path: Path | str,
    last: int | None = None,
    where: dict[str, str] | None = None,
    seconds: float | None = 60.0,
) -> Iterator[tuple[str, dict]]:
    """(row id, record) of one log file, oldest first, every field checked; with ``last``,
    only the newest ``last`` rows whose columns equal ``where``'s values. Raises
    :class:`LogError` (the row named) or ``sqlite3.DatabaseError`` (a file SQLite cannot
    read); a query that gives no row for ``seconds`` is stopped."""
    where = {c: v for c, v in (where or {}).items() if c in COLUMNS}
    connection = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        deadline = _Deadline(seconds)
        connection.set_progress_handler(deadline, 10_000)
        connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_FIELD_BYTES)
        connection.execute("PRAGMA trusted_schema = OFF")
        _check_table(connection)
        query = f"SELECT id, {', '.join(COLUMNS)} FROM predictions"
        if where:
            query += " WHERE " + " AND ".join(f"{c} = ?" for c in where)
        if last is None:
            rows: Iterable = connection.execute(query + " ORDER BY id", tuple(where.values()))
        else:
            newest = connection.execute(
                query + " ORDER BY id DESC LIMIT ?", (*where.values(), last)
            ).fetchall()
            rows = reversed(newest)
        for row_id, *values in rows:
            shown = str(row_id)[:40] if isinstance(row_id, int) else repr(row_id)[:40]
            try:
                record = {c: _field(c, v) for c, v in zip(COLUMNS, values, strict=True)}
            except ValueError as exc:
                raise LogError(f"row {shown}: {exc}") from None
            yield shown, record
            deadline.row()
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            raise LogError(f"no row came for {seconds:g} s; reading stopped") from None
        raise
    finally:
        connection.close()


def read_records(path: Path | str, **options: Any) -> list[dict]:
    """Every record of one log file, oldest first (outputs and summaries parsed, every field
    checked); ``options`` as :func:`iter_records` takes them."""
    return [record for _, record in iter_records(path, **options)]


def log_files(path: Path | str) -> list[Path]:
    """A log and its rotated files, oldest first."""
    path = Path(path)
    rotated = sorted(
        p for p in path.parent.glob(f"{path.name}.*") if not p.name.endswith(("-wal", "-shm"))
    )
    return [*rotated, *([path] if path.exists() else [])]
