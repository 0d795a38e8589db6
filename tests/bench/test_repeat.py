"""`tango bench --repeat N`: N measuring processes, the median run reported with the spread."""

from __future__ import annotations

import statistics
from pathlib import Path

from tango_ci.bench.latency import measure_repeated
from tango_ci.compile import BuildRequest, get_compiler
from tango_ci.export import export_onnx
from tango_ci.models import build_model
from tango_ci.spec import TargetSpec, load_runner
from tests.conftest import REPO


def test_the_median_run_is_reported_with_every_run(tmp_path: Path) -> None:
    export_onnx(build_model("resnet", "xs", 3).eval(), tmp_path / "model.onnx", (1, 3, 16, 16))
    runner = load_runner(REPO / "runners" / "local-cpu.yaml")
    get_compiler("onnxruntime").build(
        BuildRequest(
            onnx_path=tmp_path / "model.onnx",
            out_dir=tmp_path / "artifact",
            target=TargetSpec(name="t", runner=runner.name, engine="onnxruntime"),
            runner=runner,
        )
    )
    result = measure_repeated(
        tmp_path / "artifact",
        repeat=3,
        batch=1,
        size=16,
        threads=1,
        max_seconds=1.0,
        min_repeats=20,
    )
    runs = result["runs"]
    assert runs["count"] == 3 and len(runs["p50_ms"]) == 3 == len(set(runs["p50_ms"]))
    assert runs["median_p50_ms"] == statistics.median(runs["p50_ms"])
    assert result["p50_ms"] == runs["median_p50_ms"]  # three runs: the middle one
    assert runs["spread"] == (max(runs["p50_ms"]) - min(runs["p50_ms"])) / runs["median_p50_ms"]
