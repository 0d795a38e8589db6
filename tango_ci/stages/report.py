"""The report stage: ``report.md`` for the pull request, ``report.json`` for tools, and plots."""

from __future__ import annotations

import shutil
import subprocess

from tango_ci.bench import stability_note
from tango_ci.context import StageContext
from tango_ci.contracts import GateDecision, TrainedModel
from tango_ci.plugins import get_task
from tango_ci.report import plots
from tango_ci.report.baselines import baselines_markdown
from tango_ci.report.busy_rejections import busy_rejection_lines, busy_rejections
from tango_ci.rundir import read_json, read_record, write_json
from tango_ci.stages.compile import selected_targets
from tango_ci.stages.report_tables import auto_table, end_to_end_lines
from tango_ci.supernet.report import specialise_lines, supernet_lines


def _git_commit(folder) -> str | None:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                cwd=folder,
                text=True,
                capture_output=True,
                check=True,
            ).stdout.strip()
            or None
        )
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
    decision = read_record(GateDecision, run.stage_dir("gate"))
    model = read_record(TrainedModel, run.stage_dir("train")).to_json()
    train_metrics = read_json(run.stage_dir("train") / "metrics.json")
    search = run.manifest("search") or {}
    targets = {}
    for target in selected_targets(ctx):
        metrics = read_json(run.stage_dir("bench") / target.name / "metrics.json")
        targets[target.name] = {
            # the network this target deploys: a supernet run's own subnet per target
            "model": read_record(TrainedModel, run.model_dir(target.name)).to_json(),
            "decision": decision.targets[target.name],
            "metrics": metrics,
            "split": split_words(metrics, ctx.spec.data.split.test),
        }
    trials_path = run.stage_dir("search") / "trials.json"
    percentiles = {t.name: t.constraints.latency_percentile for t in ctx.spec.targets}
    return {
        "project": ctx.spec.name,
        "run": run.id,
        "passed": decision.passed,
        "model": model,
        "training": train_metrics,
        "search": search.get("summary", {}),
        "busy_rejections": busy_rejections(
            read_json(trials_path) if trials_path.is_file() else [], percentiles
        ),
        "export": (run.manifest("export") or {}).get("summary", {}),
        "targets": targets,
        "commit": _git_commit(ctx.spec.folder),
        "training_summary": get_task(ctx.spec.task).training_summary(train_metrics),
        "reproduce": f"tango run {_project_arg(ctx)}",
    }


def split_words(metrics: dict, test_fraction: float) -> str:
    """Which images the quality was measured on, for people."""
    quality = metrics["quality"]
    images = quality.get("images") or metrics["task_metrics"].get("images")
    count = f", {images} images" if images is not None else ""
    if quality.get("split", "val") == "test":
        return f"test split{count}, unseen by search and training"
    why = "data.split.test is 0" if test_fraction == 0 else "the data stage made none"
    return f"validation split{count} (no test split: {why})"


def _project_arg(ctx: StageContext) -> str:
    folder = ctx.spec.folder
    return f"projects/{folder.name}" if folder.parent.name == "projects" else str(folder)


def _prediction_lines(prediction: dict | None, runner: str) -> list[str]:
    """How the runner's latency model did on this measurement (the search trusted it)."""
    if not prediction:
        return []
    if "unavailable" in prediction:
        return [f"Latency model of `{runner}`: not usable ({prediction['unavailable']}).", ""]
    return [
        f"Latency model of `{runner}` ({prediction['method']}): predicted p50 "
        f"{prediction['predicted_p50_ms']:.3g} ms against {prediction['measured_p50_ms']:.3g} "
        f"ms measured, prediction error {prediction['relative_error']:+.1%}"
        + (
            f" (kernels it never saw: {', '.join(prediction['unseen_kernels'][:6])})"
            if prediction["unseen_kernels"]
            else ""
        )
        + ".",
        "",
    ]


def _tied_line(tied: object, best: dict) -> list[str]:
    """A warning when the search could not tell the winner from other architectures (the
    summary may come from a downloaded run: anything but the expected shape says nothing)."""
    if not isinstance(tied, dict) or not isinstance(tied.get("keys"), list) or not tied["keys"]:
        return []
    keys = tied["keys"]
    return [
        f"The search could not tell this choice from {', '.join(map(str, keys))}: their search "
        f"{best.get('score_label', 'score')} lies within {_format(tied.get('margin'))} of it (two "
        "standard errors of the validation split)"
        + (f" even after {_format(tied['epochs'])} epochs each" if "epochs" in tied else "")
        + ". The choice among them is a guess; more `search.epochs` would settle it.",
        "",
    ]


def _finals_line(rounds: object) -> list[str]:
    """How a tie was settled: each round's epochs and scores (anything but the expected shape,
    from a downloaded run, says nothing)."""
    if not isinstance(rounds, list) or not rounds:
        return []
    parts = []
    for played in rounds:
        if not isinstance(played, dict) or not isinstance(played.get("scores"), dict):
            return []
        scores = sorted(played["scores"].items(), key=_numeric_value, reverse=True)
        listed = ", ".join(f"{key} {_format(value)}" for key, value in scores)
        parts.append(f"after {_format(played.get('epochs'))} epochs {listed}")
    return [
        "The search's best trials tied on its short training, so they were trained "
        f"again for longer: {'; '.join(parts)}.",
        "",
    ]


def _failed_count(failed: object) -> str:
    """Trials cut short (an interrupted run; a resumed search tries again), for the summary."""
    return (
        f", {failed} interrupted or failed (not counted)"
        if isinstance(failed, int) and failed
        else ""
    )


def _busy_count(rejections: object) -> str:
    """How many of the rejected trials were timed while the host was busy, for the summary."""
    if not isinstance(rejections, list):
        return ""
    trials = {str(n) for row in rejections if isinstance(row, dict) for n in row.get("trials", [])}
    return f" ({len(trials)} on a latency timed while the host was busy)" if trials else ""


def _numeric_value(item: tuple) -> float:
    value = item[1]
    return float(value) if isinstance(value, int | float) else float("-inf")


def _source_line(sources: dict) -> list[str]:
    """Where the search's latencies came from, per target (measured here or predicted)."""
    if not sources:
        return []
    return [
        "Latency sources: "
        + "; ".join(f"`{name}` **{s['source']}** ({s['why']})" for name, s in sources.items())
        + ".",
        "",
    ]


def render_markdown(report: dict, images: dict[str, str], details: dict[str, dict]) -> str:
    """The pull-request comment; ``details`` holds each target's task lines and plot names."""
    verdict = "✅ all targets pass" if report["passed"] else "❌ gate failed"
    lines = [f"## TANGO-CI report: {report['project']} — {verdict}", ""]
    for name, entry in report["targets"].items():
        m, d = entry["metrics"], entry["decision"]
        model = entry.get("model", report["model"])
        failed = [c["check"] for c in d["checks"] if c["status"] == "fail"]
        size = (
            f"{model['parameters']:,} parameters, " if model.get("parameters") else ""
        ) + f"{model['image_size']} px input"
        quality = m["quality"]
        lines.append(
            f"- **{name}** gets {model['name']} ("
            + (f"{model['architecture']}, " if model["architecture"] != model["name"] else "")
            + f"{size}) as {m['engine']} "
            f"{m['precision']}: {quality['label']} {quality['value']:.3f}, "
            f"p95 {m['latency']['p95_ms']:.3g} ms — "
            + ("**pass**" if d["passed"] else f"**fail** ({', '.join(failed)})")
        )
    lines += [
        "",
        f"Run `{report['run']}`"
        + (f" at commit `{report['commit']}`" if report["commit"] else "")
        + ".",
        "",
    ]
    for name, entry in report["targets"].items():
        m, d = entry["metrics"], entry["decision"]
        lat = m["latency"]
        lines += [
            f"### Target `{name}` — runner `{m['runner']}`, {m['engine']} {m['precision']}, "
            f"batch {m['batch']}",
            "",
            "| check | value | limit | result |",
            "|---|---|---|---|",
        ]
        for check in d["checks"]:
            limit = (
                f"{check.get('comparison', '')} {_format(check['limit'], check.get('unit', ''))}"
                if check["limit"] is not None
                else "–"
            )
            lines.append(
                f"| {check['check']} | {_format(check['value'], check.get('unit', ''))}"
                f" | {limit} | {check['status']} |"
            )
        notes = [c for c in d["checks"] if c.get("note")]
        if notes:
            lines.append("")
        lines += [f"> {c['check']}: {' '.join(str(c['note']).split())[:300]}" for c in notes]
        lines += auto_table(m)
        if m["build"].get("advice") and not m.get("auto"):
            lines += ["", m["build"]["advice"]]
        lines += [
            "",
            "| latency | p50 | p90 | p95 | p99 | mean | CV | repeats | throughput |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| ms | {lat['p50_ms']:.3g} | {lat['p90_ms']:.3g} | {lat['p95_ms']:.3g} | "
            f"{lat['p99_ms']:.3g} | {lat['mean_ms']:.3g} | {lat['cv']:.1%} | "
            f"{lat['repeats']} | {lat['throughput_per_s']:.0f}/s |",
            "",
        ]
        note = stability_note(lat)
        if note:
            lines += [f"> ⚠ {note}", ""]
        lines += _prediction_lines(m.get("prediction"), m["runner"])
        runs = lat.get("runs", {"count": 1})
        if runs["count"] > 1:
            lines += [
                f"Run to run ({runs['count']} measuring processes): p50 "
                f"{', '.join(f'{v:.4g}' for v in runs['p50_ms'])} ms, spread "
                f"{runs['spread']:.1%} of the median, CV {runs['cv']:.1%}; the median "
                "run is the one above.",
                "",
            ]
        quality = m["quality"]
        lines += [
            f"{quality['label']} {quality['value']:.4f} on the {entry['split']}; PyTorch fp32 "
            f"{quality['reference']:.4f} on the same images (drop {quality['drop']:+.4f}). "
            f"Peak memory {m['memory']['peak_rss_mb']:.0f} "
            f"MiB (the interpreter alone: {m['memory']['rss_before_load_mb']:.0f} MiB). "
            f"Measured on {m['host']['cpu']}, {m['host']['threads']} thread(s), "
            f"governor {m['host']['governor']}."
        ]
        lines += end_to_end_lines(m.get("end_to_end"))
        own = details.get(name, {"lines": [], "images": []})
        lines += [""] + own["lines"]
        lines += [
            "",
            " ".join(
                f"![{kind.removesuffix(f'-{name}')}]({images[kind]})"
                for kind in [f"latency-{name}", *own["images"]]
                if kind in images
            ),
            "",
        ]
    search = report["search"]
    if search.get("strategy") == "supernet":
        lines += supernet_lines(search, report["training"])
    elif search:
        best = search.get("best", {})
        busy = report.get("busy_rejections")
        lines += [
            "### Search",
            "",
            f"{search.get('trials')} trial{'' if search.get('trials') == 1 else 's'} "
            f"({search.get('sampler')} sampler, "
            f"{search.get('pruner')} pruner): {search.get('feasible')} trained within "
            f"budget, {search.get('infeasible')} rejected over budget without training"
            f"{_busy_count(busy)}, "
            f"{search.get('pruned')} pruned{_failed_count(search.get('failed'))}. "
            f"Chosen: trial {best.get('number')}, "
            f"{best.get('architecture')}, search {best.get('score_label', 'score')} "
            f"{_format(best.get('score'))}.",
            "",
            *busy_rejection_lines(busy),
            *_finals_line(search.get("finals")),
            *_tied_line(search.get("tied"), best),
            *_source_line(search.get("latency_sources", {})),
            f"![search]({images['search']})",
            "",
        ]
    training = report["training"]
    lines += [
        "### Training",
        "",
        f"{training['epochs_run']} epochs (best {training['best_epoch'] + 1}"
        f"{', stopped early' if training['stopped_early'] else ''}), "
        + report["training_summary"]
        + ". ONNX parity: max |Δ| "
        f"{_format(report['export'].get('parity', {}).get('max_abs'))}.",
        "",
        *([f"![training curves]({images['curves']})", ""] if "curves" in images else []),
        "### Reproduce",
        "",
        "```",
        report["reproduce"],
        "```",
        "",
    ]
    return "\n".join(lines)


def run(ctx: StageContext) -> None:
    ctx.run.require("report", "gate", "the gate decision")
    folder = ctx.folder
    report = build_report(ctx)
    images = {"search": "search.png", "curves": "curves.png"}
    task = get_task(ctx.spec.task)
    details: dict[str, dict] = {}
    trials_path = ctx.run.stage_dir("search") / "trials.json"
    first = ctx.spec.targets[0]
    if trials_path.exists():
        plots.search_scatter(
            read_json(trials_path),
            read_json(ctx.run.stage_dir("search") / "pareto.json"),
            first.name,
            first.constraints.latency_ms,
            first.constraints.min_accuracy,
            folder / "search.png",
            score=task.quality.label,
        )
    curves = ctx.run.stage_dir("train") / "curves.png"
    if curves.is_file():  # a task's train stage may draw none
        shutil.copy2(curves, folder / "curves.png")
    else:
        images.pop("curves")
    for target in selected_targets(ctx):
        metrics = report["targets"][target.name]["metrics"]
        samples = read_json(ctx.run.stage_dir("bench") / target.name / "latency_samples.json")
        images[f"latency-{target.name}"] = f"latency-{target.name}.png"
        title = f"{target.name}: {metrics['engine']} {metrics['precision']}"
        plots.latency_histogram(
            samples,
            metrics["latency"],
            target.constraints.latency_ms,
            target.constraints.latency_percentile,
            title,
            folder / images[f"latency-{target.name}"],
        )
        lines, made = task.report_details(ctx, target.name, metrics, title, folder)
        subnet, drawn = specialise_lines(ctx.run, target.name, folder)  # a supernet's subnet
        details[target.name] = {"lines": [*lines, *subnet], "images": [*made, *drawn]}
        images.update(made)
        images.update(drawn)
    markdown = render_markdown(report, images, details)
    train_dir = ctx.run.stage_dir("train")  # baselines: after the rest, when the run has any
    markdown += "\n".join(baselines_markdown(train_dir, ctx.run.stage_dir("search")))
    (folder / "report.md").write_text(markdown, encoding="utf-8")
    write_json(folder / "report.json", report)
    for name in ("report.md", "report.json", *images.values()):
        if (folder / name).exists():
            ctx.recorder.output_file(name, folder / name)
    ctx.recorder.summary.update({"passed": report["passed"], "report": str(folder / "report.md")})
