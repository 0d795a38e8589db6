"""The detection part of a report: timing of pre- and post-processing, per-class AP, plots."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tango_ci.context import StageContext
from tango_ci.contracts import TrainedModel
from tango_ci.report import plots
from tango_ci.rundir import read_json, read_record


def detection_details(
    ctx: StageContext,
    target: str,
    metrics: Mapping[str, Any],
    title: str,
    folder: Path,
    draw_score: float,
) -> tuple[list[str], dict[str, str]]:
    from tango_ci.detection.data_stage import load_images
    from tango_ci.detection.stages import resize_to

    scores = metrics["task_metrics"]
    reference = metrics.get("reference_metrics", {})
    timing = scores["timing"]
    lines = [
        f"Pre-processing {timing['preprocess_ms_per_image']:.3g} ms and post-processing "
        f"(decoding, NMS) {timing['postprocess_ms_per_image']:.3g} ms per image, timed "
        f"apart from the network; mAP50-95 {scores['map50_95']:.4f}"
        + (f" (PyTorch fp32 {reference['map50_95']:.4f})" if "map50_95" in reference else "")
        + ".",
        "",
        "| class | AP50 | AP50-95 | precision | recall | instances |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {c} | {v['ap50']:.3f} | {v['ap50_95']:.3f} | {v['precision']:.3f} | "
        f"{v['recall']:.3f} | {v['instances']} |"
        for c, v in scores["per_class"].items()
    ]
    size = read_record(TrainedModel, ctx.run.model_dir(target)).image_size
    plots.pr_curves(
        scores["pr_curves"], f"{title}: precision-recall (IoU 0.5)", folder / f"pr-{target}.png"
    )
    images, _, _ = load_images(ctx.run, metrics["quality"].get("split", "val"))  # as scored
    samples = scores["samples"]
    plots.detection_grid(
        resize_to(images[: len(samples)], size),
        samples,
        read_json(ctx.run.stage_dir("data") / "classes.json"),
        f"{title}: truth and predictions (score >= {draw_score:g})",
        folder / f"boxes-{target}.png",
        threshold=draw_score,
    )
    return lines, {f"pr-{target}": f"pr-{target}.png", f"boxes-{target}": f"boxes-{target}.png"}
