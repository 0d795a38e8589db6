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
    if any(r["engine"] == "tvm" and not r["tuned"] for r in auto["candidates"]):
        lines += ["", "TVM ran untuned (`tuning_trials: 0`): untuned TVM code on x86 CPUs is "
                      "far slower than onnxruntime; set `tuning_trials` to let MetaSchedule "
                      "tune it on the device."]
    return lines


def render_markdown(report: dict, images: dict[str, str]) -> str:
    verdict = "✅ all targets pass" if report["passed"] else "❌ gate failed"
    model = report["model"]
    lines = [f"## TANGO-CI report: {report['project']} — {verdict}", ""]
    for name, entry in report["targets"].items():
        m, d = entry["metrics"], entry["decision"]
        failed = [c["check"] for c in d["checks"] if c["status"] == "fail"]
        lines.append(
            f"- **{name}** gets {model['family']}-{model['level']} ({model['architecture']}, "
            f"{model['parameters']:,} parameters) as {m['engine']} {m['precision']}: accuracy "
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
        lines += ["", "| latency | p50 | p90 | p95 | p99 | mean | CV | repeats | throughput |",
                  "|---|---|---|---|---|---|---|---|---|",
                  f"| ms | {lat['p50_ms']:.3g} | {lat['p90_ms']:.3g} | {lat['p95_ms']:.3g} | "
                  f"{lat['p99_ms']:.3g} | {lat['mean_ms']:.3g} | {lat['cv']:.1%} | "
                  f"{lat['repeats']} | {lat['throughput_per_s']:.0f}/s |", "",
                  f"Accuracy {m['accuracy']['accuracy']:.4f} on {m['accuracy']['images']} "
                  f"validation images; PyTorch fp32 {m['reference_accuracy']:.4f} "
                  f"(drop {m['accuracy_drop']:+.4f}). Peak memory {m['memory']['peak_rss_mb']:.0f} "
                  f"MiB (the interpreter alone: {m['memory']['rss_before_load_mb']:.0f} MiB). "
                  f"Measured on {m['host']['cpu']}, {m['host']['threads']} thread(s), "
                  f"governor {m['host']['governor']}.", "",
                  "| class | precision | recall | images |", "|---|---|---|---|"]
        for cls, values in m["accuracy"]["per_class"].items():
            lines.append(f"| {cls} | {values['precision']:.3f} | {values['recall']:.3f} | "
                         f"{values['support']} |")
        lines += ["", f"![latency]({images[f'latency-{name}']}) "
                      f"![confusion]({images[f'confusion-{name}']})", ""]
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
              f"{', stopped early' if training['stopped_early'] else ''}), validation accuracy "
              f"{training['val_accuracy']:.4f}. ONNX parity: max |Δ| "
              f"{_format(report['export'].get('parity', {}).get('max_abs'))}.", "",
              f"![training curves]({images['curves']})", "",
              "### Reproduce", "", "```", report["reproduce"], "```", ""]
    return "\n".join(lines)


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
        images[f"confusion-{target.name}"] = f"confusion-{target.name}.png"
        plots.latency_histogram(samples, metrics["latency"], target.constraints.latency_ms,
                                target.constraints.latency_percentile,
                                f"{target.name}: {target.engine} {target.precision}",
                                folder / images[f"latency-{target.name}"])
        plots.confusion_matrix(metrics["accuracy"]["confusion"], metrics["accuracy"]["classes"],
                               f"{target.name}: confusion", folder / images[f"confusion-{target.name}"])
    (folder / "report.md").write_text(render_markdown(report, images), encoding="utf-8")
    write_json(folder / "report.json", report)
    for name in ("report.md", "report.json", *images.values()):
        if (folder / name).exists():
            ctx.recorder.output_file(name, folder / name)
    ctx.recorder.summary.update({"passed": report["passed"],
                                 "report": str(folder / "report.md")})
