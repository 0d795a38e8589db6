"""Bench scores each target against the network that target deploys: one evaluator per
trained network (the train stage's, or a subnet specialised for the target)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from tango_ci.bench.latency import latency_stats
from tango_ci.rundir import RunDir, StageRecorder, read_json, write_json
from tango_ci.spec.models import TargetSpec
from tango_ci.stages import bench


def _row(target: TargetSpec) -> dict:
    latency = {"p50_ms": 1.0, "p95_ms": 1.0, "peak_rss_mb": 1.0, "runs": {"count": 1}}
    quality = {"value": 0.5, "label": "accuracy", "split": "test", "drop": 0.0}
    return {"engine": target.engine, "precision": "fp32", "latency": latency, "quality": quality}


def test_one_evaluator_per_deployed_network(tmp_path: Path, monkeypatch) -> None:
    run = RunDir(tmp_path / "run")
    write_json(run.stage_dir("compile") / "manifest.json", {"status": "complete"})
    write_json(run.stage_dir("specialise") / "gpu" / "model.json", {})
    targets = [
        TargetSpec(name=name, runner="local-cpu", engine="onnxruntime")
        for name in ("cpu-a", "cpu-b", "gpu")
    ]
    made: list[Path] = []
    scored: dict[str, object] = {}

    class Task:
        def evaluator(self, ctx, model_dir: Path) -> object:
            made.append(model_dir)
            return SimpleNamespace(model_dir=model_dir)

    def measure(ctx, target, artifact, evaluator):
        scored[target.name] = evaluator
        timing = latency_stats([1.0] * 5, batch=1) | {"samples_ms": [1.0] * 5}
        return bench.Measured(_row(target), [timing])

    monkeypatch.setattr(bench, "get_task", lambda name: Task())
    monkeypatch.setattr(bench, "_measure", measure)
    ctx = SimpleNamespace(
        run=run,
        spec=SimpleNamespace(task="classification", targets=targets),
        options={},
        recorder=StageRecorder(run, "bench"),
        reporter=SimpleNamespace(log=lambda line: None),
    )
    ctx.folder = ctx.recorder.folder
    bench.run(ctx)
    assert made == [run.stage_dir("train"), run.stage_dir("specialise") / "gpu"]
    assert scored["cpu-a"] is scored["cpu-b"] is not scored["gpu"]
    assert read_json(ctx.folder / "gpu" / "metrics.json")["quality"]["split"] == "test"
    assert ctx.recorder.summary["targets"]["gpu"]["quality_split"] == "test"
