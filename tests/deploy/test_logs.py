"""Prediction logs: appended durably, rotated past their size, exported as one JSON-lines
file for DVC."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tango_ci.deploy.logs import export_logs
from tango_ci.exceptions import TangoError
from tango_ci.runtime.logs import PredictionLog, input_summary, log_files, read_records


def _record(i: int, version: str = "v1") -> dict:
    digest, summary = input_summary(None, np.full((8, 8, 3), i % 256, np.uint8))
    return {
        "time": 1000.0 + i,
        "request": f"r{i}",
        "model_version": version,
        "role": "champion",
        "latency_ms": 1.5,
        "outputs": {"class": i % 3},
        "input_hash": digest,
        "input_summary": summary,
    }


def test_a_log_rotates_past_its_size_and_export_keeps_every_record(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "log.sqlite", max_bytes=4096)
    for i in range(350):
        log.append(_record(i, "v1" if i < 200 else "v2"))
    log.close()
    files = log_files(tmp_path / "log.sqlite")
    assert len(files) >= 2 and files[-1].name == "log.sqlite"
    assert sum(len(read_records(f)) for f in files) == 350
    done = export_logs(tmp_path / "log.sqlite", tmp_path / "out" / "predictions.jsonl")
    assert done["records"] == 350 and done["versions"] == {"v1": 200, "v2": 150}
    lines = (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert first["request"] == "r0" and first["input_summary"]["mean"] == [0.0, 0.0, 0.0]
    assert [json.loads(line)["request"] for line in lines] == [f"r{i}" for i in range(350)]
    later = export_logs(tmp_path / "log.sqlite", tmp_path / "later.jsonl", since=1300.0)
    assert later["records"] == 50


def test_export_never_overwrites_and_names_a_missing_log(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "log.sqlite")
    log.append(_record(1))
    log.close()
    (tmp_path / "out.jsonl").write_text("keep me\n")
    with pytest.raises(TangoError, match="exists; nothing was written"):
        export_logs(tmp_path / "log.sqlite", tmp_path / "out.jsonl")
    assert (tmp_path / "out.jsonl").read_text() == "keep me\n"
    with pytest.raises(TangoError, match="no prediction log there"):
        export_logs(tmp_path / "none.sqlite", tmp_path / "new.jsonl")
    (tmp_path / "bad.sqlite").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(TangoError, match="not a prediction log"):
        export_logs(tmp_path / "bad.sqlite", tmp_path / "new.jsonl")
    assert not (tmp_path / "new.jsonl").exists()
