"""``tango logs export``: a served model's prediction logs as one DVC-trackable file."""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from pathlib import Path

from tango_ci.exceptions import TangoError
from tango_ci.monitor import unreadable_log
from tango_ci.rundir import display
from tango_ci.runtime.logs import LogError, iter_records, log_files


def export_logs(log: Path, out: Path, since: float | None = None) -> dict:
    """Every record of ``log`` and its rotated files (oldest first, optionally only those at
    or after ``since``, a Unix time) as JSON lines in ``out``, written atomically; ``out`` must
    not exist. Returns counts per model version."""
    files = log_files(log)
    if not files:
        raise TangoError(f"{display(log)}: no prediction log there")
    if out.exists():
        raise TangoError(f"{display(out)} exists; nothing was written")
    counts: dict[str, int] = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}-", dir=out.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            for path in files:
                try:
                    for _, record in iter_records(path):  # every field checked, streamed
                        if since is not None and record["time"] < since:
                            continue
                        stream.write(json.dumps(record, separators=(",", ":")) + "\n")
                        version = record["model_version"]
                        counts[version] = counts.get(version, 0) + 1
                except (sqlite3.DatabaseError, LogError) as exc:
                    raise unreadable_log(path, exc) from None
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return {"files": [str(p) for p in files], "records": sum(counts.values()), "versions": counts}
