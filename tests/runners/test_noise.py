"""The device's own re-measurement spread: the floor under a latency model's error, kept
beside it, said when the device is too noisy, resumed after a kill, checked by validate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tango_ci.profiling.noise import floor, remeasure, remeasured_path, verdict
from tango_ci.spec import load_runner
from tests.pipeline_helpers import template_repo


def _held(count: int) -> list[dict]:
    return [
        {
            "id": f"{index:016x}",
            "describe": f"net {index}",
            "sample": {"kind": "never-built"},  # building one would raise: none may be built
            "p50_ms": 1.0 + index,
        }
        for index in range(count)
    ]


def test_floor_counts_re_measurements_within_five_and_ten_percent() -> None:
    found = floor([(1.0, 1.04), (1.0, 0.93), (2.0, 2.5), (4.0, 4.0)])
    assert found == {
        "count": 4,
        "within_5": 0.5,
        "within_10": 0.75,
        "mape": pytest.approx((0.04 + 0.07 + 0.25 + 0.0) / 4),
    }
    assert floor([]) is None


def test_a_noisy_device_is_named_in_one_line_and_a_quiet_one_is_not() -> None:
    quiet = {"count": 20, "within_5": 0.8, "within_10": 0.95, "mape": 0.03}
    noisy = {"count": 20, "within_5": 0.3, "within_10": 0.55, "mape": 0.2}
    assert verdict("onnxruntime", "int8", quiet) is None
    assert verdict("onnxruntime", "int8", None) is None
    line = verdict("onnxruntime", "int8", noisy)
    assert line is not None and "\n" not in line
    assert line.startswith("onnxruntime int8: only 55% of 20 networks timed again")


def test_re_measurements_on_file_are_reused_not_taken_again(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    template_repo(root)
    runner = load_runner(root / "runners" / "local-cpu.yaml")
    held = _held(5)
    path = remeasured_path(runner, "onnxruntime", "fp32")
    path.parent.mkdir(parents=True)
    again = {"0000000000000000": 1.05, "0000000000000001": 2.5, "0000000000000002": 3.0}
    failed = {"id": "0000000000000003", "first_p50_ms": 4.0, "failed": "did not build"}
    path.write_text(
        "".join(
            json.dumps({"id": i, "first_p50_ms": n + 1.0, "p50_ms": v}) + "\n"
            for n, (i, v) in enumerate(again.items())
        )
        + json.dumps(failed)
        + "\n"
        # not timings: each is taken again (and, not being a network, recorded as failed)
        + json.dumps({"id": "0000000000000004", "first_p50_ms": 5.0, "p50_ms": "fast"})
        + "\n"
    )
    # the first four (by id) are chosen; all are on file, so nothing is built or timed
    pairs = remeasure(runner, "onnxruntime", "fp32", list(reversed(held)), 4)
    assert pairs == [(1.0, 1.05), (2.0, 2.5), (3.0, 3.0)]  # a failed one is left out
    assert floor(pairs)["within_10"] == pytest.approx(2 / 3)
    # a fifth is not on file: building it fails (its sample is not a network), and the
    # failure is recorded so that a rerun does not try it again
    assert remeasure(runner, "onnxruntime", "fp32", held, 5) == pairs
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["id"] == "0000000000000004" and "failed" in last
    # measured afresh (another first timing), a network is timed again, not paired with the
    # re-measurement of an earlier profile
    held[1]["p50_ms"] = 2.2
    assert remeasure(runner, "onnxruntime", "fp32", held, 2) == [(1.0, 1.05)]
    last = json.loads(path.read_text().splitlines()[-1])
    assert (last["id"], last["first_p50_ms"]) == ("0000000000000001", 2.2)
