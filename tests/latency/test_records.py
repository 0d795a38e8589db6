"""A profile's measurement records: appended one line at a time, read back with the line a
kill cut dropped and any other bad line refused by file and line; held-out networks chosen by
their id."""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import pytest

from tango_ci.exceptions import TangoError
from tango_ci.latency.records import (
    HOLDOUT,
    MAX_RECORD_BYTES,
    append_record,
    is_held_out,
    read_measurements,
)

RECORDS = [
    {"id": "0123456789abcdef", "kind": "network", "p50_ms": 1.5, "features": {"add": [1, 0, 2]}},
    {"id": "fedcba9876543210", "kind": "block", "failed": "did not build"},
    {"id": "00000000ffffffff", "kind": "network", "p50_ms": 0.25, "describe": "ünïcode"},
]


@pytest.fixture
def records_file(tmp_path: Path) -> Path:
    path = tmp_path / "latency" / "onnxruntime-fp32.measurements.jsonl"
    for record in RECORDS:
        append_record(path, record)
    return path


def _refusal(path: Path) -> str:
    with pytest.raises(TangoError) as refused:
        read_measurements(path)
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_appended_records_read_back_in_order(records_file: Path) -> None:
    assert read_measurements(records_file) == RECORDS
    assert records_file.read_bytes().count(b"\n") == len(RECORDS)  # one line each
    append_record(records_file, {"id": "eeeeeeeeeeeeeeee"})
    assert read_measurements(records_file) == [*RECORDS, {"id": "eeeeeeeeeeeeeeee"}]


def test_a_record_that_is_not_strict_json_is_not_appended(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    with pytest.raises(ValueError):
        append_record(path, {"id": "a", "p50_ms": float("nan")})
    assert read_measurements(path) == []


def test_no_file_is_no_records(tmp_path: Path) -> None:
    assert read_measurements(tmp_path / "absent.jsonl") == []


@pytest.mark.parametrize("cut", [b'{"id": "abc", "p5', b'{"id', b"{", b'{"id": 7'])
def test_a_last_line_cut_by_a_kill_is_dropped(records_file: Path, cut: bytes) -> None:
    records_file.write_bytes(records_file.read_bytes() + cut)
    assert read_measurements(records_file) == RECORDS


def test_blank_lines_are_skipped(records_file: Path) -> None:
    lines = records_file.read_bytes().split(b"\n")
    records_file.write_bytes(b"\n  \n".join(lines))
    assert read_measurements(records_file) == RECORDS


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"id": "abc", "p5', "Unterminated string"),
        (b"[1, 2, 3]", "not a measurement record"),
        (b'"just a string"', "not a measurement record"),
        (b'{"kind": "network"}', "not a measurement record"),
        (b'{"id": 12345}', "not a measurement record"),
        (b'{"id": null}', "not a measurement record"),
        (b'{"id": "\xff"}', "codec can't decode"),
    ],
)
def test_a_bad_line_in_the_middle_is_refused_by_file_and_line(
    records_file: Path, line: bytes, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(records_file.parent)
    lines = records_file.read_bytes().split(b"\n")
    records_file.write_bytes(b"\n".join([lines[0], line, *lines[1:]]))
    message = _refusal(records_file)
    assert message.startswith(f"{records_file.name}:2: ") and reason in message


def test_a_line_over_the_limit_is_refused(records_file: Path) -> None:
    huge = json.dumps({"id": "big", "pad": "x" * MAX_RECORD_BYTES}).encode()
    records_file.write_bytes(huge + b"\n" + records_file.read_bytes())
    message = _refusal(records_file)
    assert f"{records_file}:1: line too long" in message


def test_a_symlink_or_folder_is_refused(records_file: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.jsonl"
    os.symlink(records_file, link)
    assert "not a regular file" in _refusal(link)
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    assert "not a regular file" in _refusal(folder)


def test_records_appended_after_a_kill_read_back(records_file: Path) -> None:
    records_file.write_bytes(records_file.read_bytes() + b'{"id": "cut", "p5')
    append_record(records_file, {"id": "aaaaaaaaaaaaaaa1"})
    append_record(records_file, {"id": "aaaaaaaaaaaaaaa2"})
    found = read_measurements(records_file)
    assert [r["id"] for r in found] == [r["id"] for r in RECORDS] + [
        "aaaaaaaaaaaaaaa1",
        "aaaaaaaaaaaaaaa2",
    ]


def _random_ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(64):016x}" for _ in range(count)]


def test_about_thirty_percent_are_held_out_and_always_the_same() -> None:
    ids = _random_ids(1000, seed=0)
    held = [i for i in ids if is_held_out(i)]
    assert 250 <= len(held) <= 350
    assert [i for i in ids if is_held_out(i)] == held  # the same answer every time
    assert held == [i for i in _random_ids(1000, seed=0) if is_held_out(i)]
    # a profile's ids are sha256 digests cut to 16 hex digits
    digests = [hashlib.sha256(str(n).encode()).hexdigest()[:16] for n in range(1000)]
    assert 250 <= sum(map(is_held_out, digests)) <= 350


def test_held_out_is_decided_by_the_first_eight_hex_digits() -> None:
    assert is_held_out("00000000" + "f" * 8)  # 0 % 100 < 30
    assert not is_held_out(f"{99:08x}" + "0" * 8)  # 99 % 100
    assert is_held_out(f"{129:08x}ffff") and not is_held_out(f"{130:08x}0000")
    assert HOLDOUT == 0.3


def test_an_id_that_is_not_a_sample_id_is_refused_before_the_split_sees_it(
    records_file: Path,
) -> None:
    append_record(records_file, {"id": "network-7"})
    append_record(records_file, {"id": "eeeeeeeeeeeeeeee"})
    with pytest.raises(TangoError, match=r":4: its id is not a sample id"):
        read_measurements(records_file)
