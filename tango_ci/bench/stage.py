"""The bench stage: latency, memory, size and accuracy of every target's artifact, here."""

from __future__ import annotations

from tango_ci.bench.accuracy import classification_metrics, predict_labels
from tango_ci.bench.latency import host_facts, measure_latency
from tango_ci.compile import load_artifact
from tango_ci.compile.stage import selected_targets
from tango_ci.data.stage import load_arrays
from tango_ci.rundir import read_json, write_json
from tango_ci.stage import StageContext


def run(ctx: StageContext) -> None:
    spec = ctx.spec
    ctx.run.require("bench", "compile", "built artifacts")
    reference = read_json(ctx.run.stage_dir("train") / "metrics.json")["val_accuracy"]
    classes = read_json(ctx.run.stage_dir("data") / "classes.json")
    images, labels = load_arrays(ctx.run, "val")
    max_seconds = float(ctx.options.get("bench_seconds", 20.0))
    results = {}
    for target in selected_targets(ctx):
        runner = spec.runners[target.runner]
        artifact = ctx.run.stage_dir("compile") / target.name
        if not (artifact / "artifact.json").exists():
            from tango_ci.exceptions import StageInputError

            raise StageInputError(stage="bench", what=f"the artifact of target {target.name}",
                                  previous=f"compile projects/{spec.name} --target {target.name}")
        built = read_json(artifact / "artifact.json")
        ctx.reporter.log(f"timing {target.name} ({target.engine} {target.precision}, "
                         f"batch {target.batch}, {runner.threads} threads)")
        latency = measure_latency(artifact, batch=target.batch, size=spec.data.image_size,
                                  threads=runner.threads, max_seconds=max_seconds)
        samples = latency.pop("samples_ms")
        predictor = load_artifact(artifact, threads=runner.threads)
        accuracy = classification_metrics(labels, predict_labels(predictor, images,
                                                                 target.batch), classes)
        predictor.close()
        metrics = {
            "target": target.name, "engine": target.engine, "precision": target.precision,
            "batch": target.batch, "runner": runner.name, "latency": latency,
            "memory": {"peak_rss_mb": latency["peak_rss_mb"],
                       "rss_before_load_mb": latency["rss_before_load_mb"]},
            "size": {"artifact_bytes": built["bytes"], "artifact_mb": built["bytes"] / 2**20},
            "accuracy": accuracy, "reference_accuracy": reference,
            "accuracy_drop": reference - accuracy["accuracy"],
            "host": host_facts(runner.threads),
            "measured_on_target_hardware": None,  # unknown here; CI runners set it by label
        }
        folder = ctx.folder / target.name
        write_json(folder / "metrics.json", metrics)
        write_json(folder / "latency_samples.json", samples)
        ctx.recorder.input_file(f"{target.name}_artifact", artifact / built["file"])
        ctx.recorder.output_file(f"{target.name}_metrics", folder / "metrics.json")
        results[target.name] = {"p50_ms": latency["p50_ms"], "p95_ms": latency["p95_ms"],
                                "accuracy": accuracy["accuracy"],
                                "peak_rss_mb": latency["peak_rss_mb"]}
    ctx.recorder.summary["targets"] = results
