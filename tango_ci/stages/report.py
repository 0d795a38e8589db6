"""The report stage: ``report.md`` for the pull request, ``report.json`` for tools, and plots."""

from __future__ import annotations

import shutil
import subprocess

from tango_ci.compile.stage import selected_targets
from tango_ci.report import plots
from tango_ci.rundir import read_json, write_json
from tango_ci.stage import StageContext


def _git_commit(folder) -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, text=True,
                              capture_output=True, check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def _format(value, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        text = f"{value:.4g}" if abs(value) >= 0.001 or value == 0 else f"{value:.2e}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def build_report(ctx: StageContext) -> dict:
    """Everything the report shows, as data (``report.json``)."""
    run = ctx.run
    decision = read_json(run.stage_dir("gate") / "decision.json")
    model = read_json(run.stage_dir("train") / "model.json")
    train_metrics = read_json(run.stage_dir("train") / "metrics.json")
    search = run.manifest("search") or {}
    targets = {}
    for target in selected_targets(ctx):
        metrics = read_json(run.stage_dir("bench") / target.name / "metrics.json")
        targets[target.name] = {"decision": decision["targets"][target.name],
                                "metrics": metrics}
    return {
        "project": ctx.spec.name, "run": run.id, "passed": decision["passed"],
        "model": model, "training": train_metrics, "search": search.get("summary", {}),
        "export": (run.manifest("export") or {}).get("summary", {}),
        "targets": targets, "commit": _git_commit(ctx.spec.folder),
        "reproduce": f"tango run {_project_arg(ctx)}",
    }


def _project_arg(ctx: StageContext) -> str:
    folder = ctx.spec.folder
    return f"projects/{folder.name}" if folder.parent.name == "projects" else str(folder)


def _per_class(m: dict) -> list[str]:
    per_class = m["accuracy"]["per_class"]
    if m.get("quality_name") == "mAP50":
        timing = m["accuracy"]["timing"]
        lines = [f"Pre-processing {timing['preprocess_ms_per_image']:.3g} ms and post-processing "
                 f"(decoding, NMS) {timing['postprocess_ms_per_image']:.3g} ms per image, timed "
                 f"apart from the network; mAP50-95 {m['accuracy']['map50_95']:.4f}.", "",
                 "| class | AP50 | AP50-95 | precision | recall | instances |",
                 "|---|---|---|---|---|---|"]
        return lines + [f"| {c} | {v['ap50']:.3f} | {v['ap50_95']:.3f} | {v['precision']:.3f} | "
                        f"{v['recall']:.3f} | {v['instances']} |" for c, v in per_class.items()]
    return ["| class | precision | recall | images |", "|---|---|---|---|"] + [
        f"| {c} | {v['precision']:.3f} | {v['recall']:.3f} | {v['support']} |"
        for c, v in per_class.items()]


def _auto_table(metrics: dict) -> list[str]:
    """For engine: auto, every candidate measured, so the choice can be checked."""
    auto = metrics.get("auto")
    if not auto:
        return []
    lines = ["", f"`engine: auto` chose **{auto['chosen']}**: {auto['reason']}.", "",
             "| candidate | p50 ms | p95 ms | CV | accuracy | drop | peak MiB | size MiB |",
             "|---|---|---|---|---|---|---|---|"]
    for row in auto["candidates"]:
        name = f"{row['engine']} {row['precision']}" + (" (tuned)" if row["tuned"] else "")
        mark = "**" if f"{row['engine']}-{row['precision']}" == auto["chosen"] else ""
        lines.append(f"| {mark}{name}{mark} | {row['p50_ms']:.3g} | {row['p95_ms']:.3g} | "
                     f"{row['cv']:.1%} | {row['accuracy']:.4f} | {row['accuracy_drop']:+.4f} | "
                     f"{row['peak_rss_mb']:.0f} | {row['artifact_mb']:.3g} |")
    for name, reason in auto.get("failed", {}).items():
        lines.append(f"| {name.replace('-', ' ')} | could not be built: {reason} |||||||")
    if any(r["engine"] == "tvm" and not r["tuned"] for r in auto["candidates"]):
        lines += ["", UNTUNED_TVM]
    return lines


UNTUNED_TVM = ("TVM ran untuned (`tuning_trials: 0`): untuned TVM code on x86 CPUs is far "
               "slower than onnxruntime; set `tuning_trials` to let MetaSchedule tune it on "
               "the device.")


def render_markdown(report: dict, images: dict[str, str]) -> str:
    verdict = "✅ all targets pass" if report["passed"] else "❌ gate failed"
    model = report["model"]
    lines = [f"## TANGO-CI report: {report['project']} — {verdict}", ""]
    for name, entry in report["targets"].items():
        m, d = entry["metrics"], entry["decision"]
        failed = [c["check"] for c in d["checks"] if c["status"] == "fail"]
        network = (f"{model['family']}-{model['level']} ({model['architecture']}, "
                   if "level" in model else f"{model['architecture']} (")
        parameters = f"{model['parameters']:,} parameters" if model.get("parameters") \
            else f"{model['image_size']} px input"
        lines.append(
            f"- **{name}** gets {network}{parameters}) as {m['engine']} {m['precision']}: "
            f"{m.get('quality_name', 'accuracy')} "
            f"{m['accuracy']['accuracy']:.3f}, p95 {m['latency']['p95_ms']:.3g} ms — "
            + ("**pass**" if d["passed"] else f"**fail** ({', '.join(failed)})"))
    lines += ["", f"Run `{report['run']}`" + (f" at commit `{report['commit']}`"
                                              if report["commit"] else "") + ".", ""]
    for name, entry in report["targets"].items():
        m, d = entry["metrics"], entry["decision"]
        lat = m["latency"]
        lines += [f"### Target `{name}` — runner `{m['runner']}`, {m['engine']} {m['precision']}, "
                  f"batch {m['batch']}", "",
                  "| check | value | limit | result |", "|---|---|---|---|"]
        for check in d["checks"]:
            limit = (f"{check.get('comparison', '')} {_format(check['limit'], check.get('unit', ''))}"
                     if check["limit"] is not None else "–")
            lines.append(f"| {check['check']} | {_format(check['value'], check.get('unit', ''))}"
                         f" | {limit} | {check['status']} |")
        lines += _auto_table(m)
        if m["engine"] == "tvm" and not m["build"].get("tuning", {}).get("trials"):
            lines += ["", UNTUNED_TVM]
        lines += ["", "| latency | p50 | p90 | p95 | p99 | mean | CV | repeats | throughput |",
                  "|---|---|---|---|---|---|---|---|---|",
                  f"| ms | {lat['p50_ms']:.3g} | {lat['p90_ms']:.3g} | {lat['p95_ms']:.3g} | "
                  f"{lat['p99_ms']:.3g} | {lat['mean_ms']:.3g} | {lat['cv']:.1%} | "
                  f"{lat['repeats']} | {lat['throughput_per_s']:.0f}/s |", ""]
        runs = lat.get("runs", {"count": 1})
        if runs["count"] > 1:
            lines += [f"Run to run ({runs['count']} measuring processes): p50 "
                      f"{', '.join(f'{v:.4g}' for v in runs['p50_ms'])} ms, spread "
                      f"{runs['spread']:.1%} of the median, CV {runs['cv']:.1%}; the median "
                      "run is the one above.", ""]
        lines += [
                  f"{m.get('quality_name', 'accuracy')} {m['accuracy']['accuracy']:.4f} on "
                  f"{m['accuracy']['images']} validation images; PyTorch fp32 "
                  f"{m['reference_accuracy']:.4f} "
                  f"(drop {m['accuracy_drop']:+.4f}). Peak memory {m['memory']['peak_rss_mb']:.0f} "
                  f"MiB (the interpreter alone: {m['memory']['rss_before_load_mb']:.0f} MiB). "
                  f"Measured on {m['host']['cpu']}, {m['host']['threads']} thread(s), "
                  f"governor {m['host']['governor']}."]
        lines += [""] + _per_class(m)
        lines += ["", " ".join(f"![{kind}]({images[f'{kind}-{name}']})"
                               for kind in ("latency", "confusion", "pr", "boxes")
                               if f"{kind}-{name}" in images), ""]
    search = report["search"]
    if search:
        best = search.get("best", {})
        lines += ["### Search", "",
                  f"{search.get('trials')} trials ({search.get('sampler')} sampler, "
                  f"{search.get('pruner')} pruner): {search.get('feasible')} trained within "
                  f"budget, {search.get('infeasible')} rejected over budget without training, "
                  f"{search.get('pruned')} pruned. Chosen: trial {best.get('number')}, "
                  f"{best.get('architecture')}, accuracy {_format(best.get('accuracy'))}.", "",
                  f"![search]({images['search']})", ""]
    training = report["training"]
    lines += ["### Training", "",
              f"{training['epochs_run']} epochs (best {training['best_epoch'] + 1}"
              f"{', stopped early' if training['stopped_early'] else ''}), validation "
              + (f"mAP50 {training['val_map50']:.4f}" if "val_map50" in training
                 else f"accuracy {training['val_accuracy']:.4f}") + ". ONNX parity: max |Δ| "
              f"{_format(report['export'].get('parity', {}).get('max_abs'))}.", "",
              f"![training curves]({images['curves']})", "",
              "### Reproduce", "", "```", report["reproduce"], "```", ""]
    return "\n".join(lines)


def _detection_plots(ctx: StageContext, name: str, metrics: dict, title: str,
                     folder) -> dict[str, str]:
    from tango_ci.detection.data_stage import load_val
    from tango_ci.detection.stages import _resize_to

    size = read_json(ctx.run.stage_dir("train") / "model.json")["image_size"]
    quality = metrics["accuracy"]
    plots.pr_curves(quality["pr_curves"], f"{title}: precision-recall (IoU 0.5)",
                    folder / f"pr-{name}.png")
    images, _, _ = load_val(ctx.run)
    samples = quality["samples"]
    plots.detection_grid(_resize_to(images[: len(samples)], size), samples,
                         read_json(ctx.run.stage_dir("data") / "classes.json"),
                         f"{title}: truth and predictions (score >= 0.25)",
                         folder / f"boxes-{name}.png")
    return {f"pr-{name}": f"pr-{name}.png", f"boxes-{name}": f"boxes-{name}.png"}


def run(ctx: StageContext) -> None:
    ctx.run.require("report", "gate", "the gate decision")
    folder = ctx.folder
    report = build_report(ctx)
    images = {"search": "search.png", "curves": "curves.png"}
    trials_path = ctx.run.stage_dir("search") / "trials.json"
    first = ctx.spec.targets[0]
    if trials_path.exists():
        plots.search_scatter(read_json(trials_path),
                             read_json(ctx.run.stage_dir("search") / "pareto.json"),
                             first.name, first.constraints.latency_ms,
                             first.constraints.min_accuracy, folder / "search.png")
    shutil.copy2(ctx.run.stage_dir("train") / "curves.png", folder / "curves.png")
    for target in selected_targets(ctx):
        metrics = report["targets"][target.name]["metrics"]
        samples = read_json(ctx.run.stage_dir("bench") / target.name / "latency_samples.json")
        images[f"latency-{target.name}"] = f"latency-{target.name}.png"
        title = f"{target.name}: {metrics['engine']} {metrics['precision']}"
        plots.latency_histogram(samples, metrics["latency"], target.constraints.latency_ms,
                                target.constraints.latency_percentile, title,
                                folder / images[f"latency-{target.name}"])
        if ctx.spec.task == "detection":
            images.update(_detection_plots(ctx, target.name, metrics, title, folder))
        else:
            images[f"confusion-{target.name}"] = f"confusion-{target.name}.png"
            plots.confusion_matrix(metrics["accuracy"]["confusion"],
                                   metrics["accuracy"]["classes"], f"{target.name}: confusion",
                                   folder / images[f"confusion-{target.name}"])
    (folder / "report.md").write_text(render_markdown(report, images), encoding="utf-8")
    write_json(folder / "report.json", report)
    for name in ("report.md", "report.json", *images.values()):
        if (folder / name).exists():
            ctx.recorder.output_file(name, folder / name)
    ctx.recorder.summary.update({"passed": report["passed"],
                                 "report": str(folder / "report.md")})
