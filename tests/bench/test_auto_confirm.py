"""engine: auto does not let one unstable timing pick the slower build: the close candidates
are timed again, taking turns, and the choice is made on the median of their processes."""

from __future__ import annotations

import statistics
from pathlib import Path
from types import SimpleNamespace

import pytest

from tango_ci.bench.latency import measure_latency
from tango_ci.compile import BuildRequest, get_compiler
from tango_ci.export import export_onnx
from tango_ci.models import build_model
from tango_ci.progress import Reporter
from tango_ci.spec import TargetSpec, load_runner
from tango_ci.stages.bench import CONFIRM_ROUNDS, Measured, candidate_row, choose, confirm, rivals
from tango_ci.stages.report_tables import auto_table
from tests.conftest import REPO


def _row_of(name: str, p50: float, p95: float, drop: float, unstable: bool = False) -> dict:
    engine, precision = name.split("-")
    return {
        "engine": engine,
        "precision": precision,
        "latency": {"p50_ms": p50, "p95_ms": p95, "unstable": unstable},
        "quality": {"drop": drop, "label": "accuracy"},
    }


def test_only_a_choice_resting_on_an_unstable_timing_is_measured_again() -> None:
    fast = _row_of("onnxruntime-int8", 4.0, 4.4, 0.0)
    close = _row_of("onnxruntime-fp32", 4.2, 6.0, 0.0, unstable=True)  # a burst in its tail
    far = _row_of("pytorch-fp32", 20.0, 30.0, 0.0, unstable=True)  # could not win anyway
    over = _row_of("tvm-fp32", 1.0, 1.1, 0.5, unstable=True)  # over the drop limit
    assert rivals([fast, close, far, over], "p95", 0.01) == [0, 1]
    # both stable: the first timing decides
    steady = _row_of("onnxruntime-fp32", 4.2, 4.5, 0.0)
    assert rivals([fast, steady, far], "p95", 0.01) == []
    # the fastest's own timing unstable, with a close rival: both again
    shaky_fast = _row_of("onnxruntime-int8", 4.0, 4.4, 0.0, unstable=True)
    assert rivals([steady, shaky_fast], "p95", 0.01) == [1, 0]
    # no rival within the margin: nothing to settle
    assert rivals([shaky_fast, far], "p95", 0.01) == []
    assert rivals([over], "p95", 0.01) == []


class _Log(Reporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        self.lines.append(message)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("confirm")
    runner = load_runner(REPO / "runners" / "local-cpu.yaml")
    built = {}
    for family in ("resnet", "mobilenetv3"):
        onnx = folder / f"{family}.onnx"
        export_onnx(build_model(family, "xs", 3).eval(), onnx, (1, 3, 16, 16))
        get_compiler("onnxruntime").build(
            BuildRequest(
                onnx_path=onnx,
                out_dir=folder / family,
                target=TargetSpec(name="t", runner=runner.name, engine="onnxruntime"),
                runner=runner,
            )
        )
        built[family] = folder / family
    return built


def test_rivals_are_timed_in_more_processes_and_chosen_on_their_median(artifacts) -> None:
    runner = load_runner(REPO / "runners" / "local-cpu.yaml")
    target = TargetSpec(name="cpu-auto", runner=runner.name, engine="auto")
    log = _Log()
    ctx = SimpleNamespace(
        spec=SimpleNamespace(runners={runner.name: runner}, data=SimpleNamespace(image_size=16)),
        options={"bench_seconds": 0.5},
        reporter=log,
    )
    timing = {"batch": 1, "size": 16, "threads": runner.threads, "max_seconds": 0.5}
    measured = []
    for name, artifact in artifacts.items():
        first = measure_latency(artifact, **timing)
        first |= {"unstable": name == "resnet", "unstable_reason": "a burst (made for the test)"}
        row = _row_of(f"{name}-fp32", first["p50_ms"], first["p95_ms"], 0.0)
        row |= {"artifact": str(artifact), "latency": first}
        stale = {"predicted_p50_ms": 1.0, "measured_p50_ms": first["p50_ms"], "relative_error": 9}
        row |= {"prediction": stale, "prediction_error": 9}
        measured.append(Measured(row, [first]))
    first_p95 = {m.row["engine"]: m.row["latency"]["p95_ms"] for m in measured}

    again = confirm(ctx, target, measured, "p95")

    assert again["candidates"] == ["resnet-fp32", "mobilenetv3-fp32"]
    assert again["unstable_first"] == {"resnet-fp32": "a burst (made for the test)"}
    assert again["first_ms"] == {f"{k}-fp32": v for k, v in first_p95.items()}
    for candidate in measured:
        latency, samples = candidate.combined()
        runs = candidate.row["latency"]["runs"]
        assert runs["count"] == 1 + CONFIRM_ROUNDS == len(candidate.runs)
        assert candidate.row["latency"]["p50_ms"] == statistics.median(runs["p50_ms"])
        assert candidate.row["latency"]["p95_ms"] == latency["p95_ms"]
        assert statistics.median(samples) == pytest.approx(latency["p50_ms"])
        assert candidate.row["memory"]["peak_rss_mb"] == latency["peak_rss_mb"]
        # the latency model's error is judged against the timing kept, not the unstable one
        prediction = candidate.row["prediction"]
        assert prediction["measured_p50_ms"] == latency["p50_ms"]
        error = (1.0 - latency["p50_ms"]) / latency["p50_ms"]
        assert prediction["relative_error"] == candidate.row["prediction_error"] == error
    assert "measuring resnet-fp32, mobilenetv3-fp32 again" in log.lines[0]
    assert "resnet-fp32: a burst (made for the test)" in log.lines[0]
    # the choice is made on the combined timings
    rows = [m.row for m in measured]
    best, _ = choose(rows, "p95", 0.01)
    assert best == min(range(2), key=lambda i: rows[i]["latency"]["p95_ms"])
    # and the report says what happened
    for row in rows:
        row |= {"build": {}, "size": {"artifact_mb": 1.0}, "quality": {"value": 0.9, "drop": 0.0}}
    metrics = {
        "quality": {"label": "accuracy"},
        "auto": {
            "chosen": "resnet-fp32",
            "reason": "fastest",
            "candidates": [candidate_row(row) for row in rows],
            "remeasured": again,
        },
    }
    text = "\n".join(auto_table(metrics))
    assert "A first timing was unstable (resnet-fp32: a burst (made for the test))" in text
    assert f"{CONFIRM_ROUNDS} more processes each" in text
    assert f"resnet-fp32 {first_p95['resnet']:.3g} ms" in text
