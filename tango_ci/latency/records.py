"""A profile's measurement records: one JSON object per line, appended and flushed the moment a
measurement is taken (a kill loses at most the line being written), read back with limits.

Kept apart from the profiler so that ``tango validate`` can check them without torch.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from tango_ci.exceptions import TangoError
from tango_ci.jsonfiles import display, one_line_reason

HOLDOUT = 0.3
MAX_RECORD_BYTES = 256 * 1024
MAX_RECORDS = 100_000
SAMPLE_ID = re.compile(r"[0-9a-f]{16}")


class MeasurementsError(TangoError):
    """A measurements file that is not a list of records; ``line`` 0 means the whole file."""

    _template = "{source}{where}: {reason}"

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(source=source, line=line, reason=reason, where=f":{line}" if line else "")


def models_folder(runner_file: Path) -> Path:
    """``runners/<name>/latency/``, beside the runner file ``runners/<name>.yaml`` (a runner's
    name is its file name): where its latency models and measurements live."""
    return runner_file.parent / runner_file.stem / "latency"


def model_file(runner_file: Path, engine: str, precision: str) -> Path:
    return models_folder(runner_file) / f"{engine}-{precision}.json"


def read_measurements(path: Path) -> list[dict]:
    """The records of a measurements file. A last line cut by a kill is dropped; any other
    line that is not a record is an error naming its line."""
    if not path.exists():
        return []
    if path.is_symlink() or not path.is_file():
        raise MeasurementsError(display(path), 0, "not a regular file")
    lines = path.read_bytes().split(b"\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            if len(line) > MAX_RECORD_BYTES:
                raise ValueError("line too long")
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                raise ValueError("not a measurement record")
            if not SAMPLE_ID.fullmatch(record["id"]):
                raise ValueError("its id is not a sample id (16 hex digits)")
        except ValueError as exc:
            if number >= len(lines) - 1:  # the line a kill interrupted
                break
            raise MeasurementsError(display(path), number, one_line_reason(exc)) from None
        records.append(record)
        if len(records) > MAX_RECORDS:
            raise MeasurementsError(display(path), 0, f"more than {MAX_RECORDS} records")
    return records


def append_record(path: Path, record: dict) -> None:
    """Append ``record`` as one line, first cutting off a line a kill left unfinished."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size:
            handle.seek(max(0, size - MAX_RECORD_BYTES - 1))
            tail = handle.read()
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                handle.truncate(size - len(tail) + cut + 1 if cut >= 0 else 0)
        handle.write(json.dumps(record, allow_nan=False).encode() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


def is_held_out(sample_id: str) -> bool:
    """Whether a sample (by its id, 16 hex digits) is kept out of the fit, for judging it."""
    return int(sample_id[:8], 16) % 100 < HOLDOUT * 100
