"""Hostile prediction logs (SQLite stores and their JSON-lines exports) and bundle references:
each is refused in one line naming the file and the row or record, never a traceback, and a
crafted store cannot make a read run forever or hold every row in memory."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

import tango_ci.monitor as monitoring
from tango_ci.deploy.logs import export_logs
from tango_ci.exceptions import TangoError
from tango_ci.monitor import monitor, read_window
from tango_ci.runtime.logs import COLUMNS, SCHEMA, LogError, PredictionLog, iter_records
from tests.hostile.test_operation import GOOD

HASH = "ab" * 32
#: the writer's columns without types or constraints: a crafted file holds anything
LOOSE = "CREATE TABLE predictions (id INTEGER PRIMARY KEY, " + ", ".join(COLUMNS) + ")"
ROW = GOOD | {"request": "r", "latency_ms": 1.0, "input_hash": HASH}


def _store(path: Path, rows: list[tuple], schema: str = LOOSE) -> Path:
    """A log store written by hand: ``rows`` of the columns in order, as given."""
    connection = sqlite3.connect(path)
    connection.execute(schema)
    names = ", ".join(COLUMNS)
    connection.executemany(
        f"INSERT INTO predictions ({names}) VALUES ({', '.join('?' * len(COLUMNS))})", rows
    )
    connection.commit()
    connection.close()
    return path


def _row(**changes) -> tuple:
    record = ROW | changes
    return tuple(
        json.dumps(record[c])
        if c in ("outputs", "input_summary") and c not in changes
        else record[c]
        for c in COLUMNS
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"outputs": "{not json"}, r"row 2: 'outputs' is not JSON"),
        ({"outputs": None}, r"row 2: 'outputs' is not JSON text"),
        ({"outputs": b"\xff\xfe"}, r"row 2: 'outputs' is not JSON text"),
        ({"input_summary": "[" * 100_000}, r"row 2: 'input_summary' is nested too deeply"),
        ({"time": "yesterday"}, r"row 2: 'time' is not a number"),
        ({"model_version": 7}, r"row 2: 'model_version' is not text"),
    ],
)
def test_a_malformed_row_is_refused_naming_the_file_and_row(tmp_path: Path, changes, message):
    store = _store(tmp_path / "log.sqlite", [_row(), _row(**changes)])
    with pytest.raises(TangoError, match=rf"log\.sqlite: {message}"):
        export_logs(store, tmp_path / "out.jsonl", since=5.0)
    assert not (tmp_path / "out.jsonl").exists()
    with pytest.raises(TangoError, match=rf"log\.sqlite: {message}"):
        read_window(store, None, 10)


def test_a_file_that_is_not_sqlite_is_refused_by_monitor_and_the_queue(tmp_path: Path) -> None:
    (tmp_path / "log.sqlite").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(TangoError, match=r"log\.sqlite: not a prediction log \(file is not a"):
        read_window(tmp_path / "log.sqlite", None, 10)


ENDLESS = (
    "CREATE VIEW predictions AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
    "SELECT i AS id, 1.0 AS time, 'r' AS request, 'v1' AS model_version, 'champion' AS role, "
    "1.0 AS latency_ms, '{}' AS outputs, 'h' AS input_hash, '{}' AS input_summary "
    "FROM n WHERE i < 0"
)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (ENDLESS, "'predictions' is missing or not a table"),
        (
            SCHEMA.replace("input_summary TEXT NOT NULL", "summary TEXT"),
            "its table lacks input_summary",
        ),
        (
            SCHEMA.replace(
                "input_summary TEXT NOT NULL",
                "input_summary TEXT GENERATED ALWAYS AS (hex(zeroblob(1000000)))",
            ),
            "its table has generated or hidden columns",
        ),
    ],
)
def test_a_store_whose_predictions_are_not_a_plain_table_is_refused_before_any_query(
    tmp_path: Path, schema: str, message: str
) -> None:
    """A view runs its author's query on every read (this one never ends); so would a
    generated column."""
    store = tmp_path / "log.sqlite"
    connection = sqlite3.connect(store)
    connection.execute(schema)
    connection.close()
    with pytest.raises(TangoError, match=f"log.sqlite: not a prediction log: {message}"):
        export_logs(store, tmp_path / "out.jsonl")
    with pytest.raises(TangoError, match=f"log.sqlite: not a prediction log: {message}"):
        read_window(store, None, 10)


def test_a_query_that_gives_no_row_in_time_is_stopped(tmp_path: Path) -> None:
    store = _store(tmp_path / "log.sqlite", [_row() for _ in range(12_000)])
    with pytest.raises(LogError, match="no row came for 0 s; reading stopped"):
        list(iter_records(store, last=5, where={"model_version": "none"}, seconds=0))


def test_the_window_reads_only_the_newest_rows_across_rotated_files(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "log.sqlite", max_bytes=4096)
    for i in range(400):
        log.append(ROW | {"time": float(i), "role": "challenger" if i % 2 else "champion"})
    log.close()
    # an old rotated file that is not SQLite: the newest rows are enough, it is never opened
    (tmp_path / "log.sqlite.19700101T000000").write_bytes(b"not read")
    window = read_window(tmp_path / "log.sqlite", "v1", 150)
    assert [r["time"] for r in window] == [float(i) for i in range(100, 400, 2)]


def test_a_log_path_with_a_hash_or_question_mark_is_opened_read_only(tmp_path: Path) -> None:
    store = _store(tmp_path / "log#1?x=y.sqlite", [_row()])
    assert [r["input_hash"] for r in read_window(store, None, 5)] == [HASH]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[" * 100_000, r"log\.jsonl:2: not a JSON record \(nested too deeply\)"),
        (
            json.dumps(GOOD | {"outputs": {"probabilities": [10**400, 0]}}),
            r"record 2: 'outputs.probabilities' is not a list of finite numbers",
        ),
        (
            json.dumps(GOOD | {"outputs": {"boxes": [{"class": 0, "score": 10**400}]}}),
            r"record 2: 'outputs.boxes' is not a list of boxes",
        ),
        (json.dumps(GOOD | {"time": "noon"}), r"record 2: 'time' is not a finite number"),
        (
            json.dumps(GOOD | {"input_hash": "../../../zzzz/ab"}),
            r"record 2: 'input_hash' is not a sha256 in hex",
        ),
    ],
)
def test_a_hostile_export_line_is_refused_naming_it(tmp_path: Path, line, message) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + line + "\n")
    with pytest.raises(TangoError, match=message):
        read_window(path, None, 100)


def test_an_export_is_streamed_and_capped(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(GOOD | {"time": float(i)}) + "\n" for i in range(50)))
    assert [r["time"] for r in read_window(path, None, 3)] == [47.0, 48.0, 49.0]
    with pytest.raises(TangoError, match="the window must be at least 1 record, not 0"):
        read_window(path, None, 0)
    monkeypatch.setattr(monitoring, "MAX_EXPORT_BYTES", 1000)
    with pytest.raises(TangoError, match=r"log\.jsonl: \d+ bytes, more than"):
        read_window(path, None, 3)


class _StubBundle:
    """A verified bundle as monitor sees it: version, labels, task and the manifest's files."""

    def __init__(self, folder) -> None:
        reference = Path(folder) / "reference.json"
        digest = hashlib.sha256(reference.read_bytes()).hexdigest() if reference.exists() else 0
        self.version, self.labels, self.task = "v1", ["a", "b"], "classification"
        self.manifest = {"files": {"reference.json": digest}}
        self.documents = {"reference.json": reference.read_bytes()} if reference.exists() else {}


def _answer(i: int, mean: list | None = None) -> dict:
    p = 0.2 + 0.6 * ((i * 7) % 10) / 10
    summary = {"shape": [8, 8, 3], "mean": mean or [1, 2, 3], "std": [1, 1, 1]}
    return {"outputs": {"probabilities": [p, 1 - p]}, "input_summary": summary}


@pytest.fixture
def stub_bundle(tmp_path: Path, monkeypatch) -> Path:
    import tango_ci.runtime

    monkeypatch.setattr(tango_ci.runtime, "Bundle", _StubBundle)
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "reference.json").write_text(json.dumps({"records": [_answer(i) for i in range(30)]}))
    return folder


def test_input_statistics_of_another_channel_count_are_refused(stub_bundle, tmp_path) -> None:
    records = [GOOD | _answer(i) for i in range(29)] + [GOOD | _answer(29, [1, 2])]
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(TangoError, match="record 30 of the window: the input statistics are not 3"):
        monitor(log, stub_bundle, tmp_path / "out", permutations=5)
    assert not (tmp_path / "out").exists()


def test_the_reference_is_the_one_the_bundle_verified(stub_bundle, tmp_path, monkeypatch) -> None:
    """A reference changed in the folder after the bundle's check is never read: the monitor
    uses the bytes the bundle hashed."""
    import tango_ci.runtime

    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(GOOD | _answer(i)) + "\n" for i in range(30)))
    first = monitor(log, stub_bundle, tmp_path / "out", permutations=5)
    assert first["records"] == 30
    original = (stub_bundle / "reference.json").read_text()

    def changed_after_the_check(folder) -> _StubBundle:
        loaded = _StubBundle(folder)
        (stub_bundle / "reference.json").write_text(original.replace("1, 2, 3", "9, 9, 9"))
        return loaded

    monkeypatch.setattr(tango_ci.runtime, "Bundle", changed_after_the_check)
    again = monitor(log, stub_bundle, tmp_path / "again", permutations=5)
    assert json.loads((tmp_path / "again" / "drift.json").read_text()) == json.loads(
        (tmp_path / "out" / "drift.json").read_text()
    )
    assert again["records"] == 30
    monkeypatch.setattr(tango_ci.runtime, "Bundle", _StubBundle)
    (stub_bundle / "reference.json").write_text(original)
    shutil.rmtree(tmp_path / "again")
    (stub_bundle / "reference.json").unlink()
    with pytest.raises(TangoError, match=r"the bundle lists no reference; redeploy it"):
        monitor(log, stub_bundle, tmp_path / "again", permutations=5)
    assert not (tmp_path / "again").exists()
