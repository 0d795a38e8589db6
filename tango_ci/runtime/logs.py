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
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

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


def read_records(path: Path | str) -> list[dict]:
    """Every record of one log file, oldest first (outputs and summaries parsed)."""
    connection = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            f"SELECT {', '.join(COLUMNS)} FROM predictions ORDER BY id"
        ).fetchall()
    finally:
        connection.close()
    records = []
    for row in rows:
        record = dict(zip(COLUMNS, row, strict=True))
        record["outputs"] = json.loads(record["outputs"])
        record["input_summary"] = json.loads(record["input_summary"])
        records.append(record)
    return records


def log_files(path: Path | str) -> list[Path]:
    """A log and its rotated files, oldest first."""
    path = Path(path)
    rotated = sorted(
        p for p in path.parent.glob(f"{path.name}.*") if not p.name.endswith(("-wal", "-shm"))
    )
    return [*rotated, *([path] if path.exists() else [])]
