"""Report figures (matplotlib, written as PNG files)."""

from __future__ import annotations

import math
import textwrap
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

# class names and labels are text, never TeX: "a$x^$b" made mathtext raise and the stage fail
matplotlib.rcParams["text.parse_math"] = False


def _save(figure: Figure, path: Path, footer: float = 0.0) -> Figure:
    """Write ``figure`` and close it; returns it, so tests can read its texts and limits.

    ``footer`` is the fraction of the height kept free below the axes for notes.
    """
    with warnings.catch_warnings():
        # a class name in a script DejaVu Sans lacks (CJK) is drawn as boxes; matplotlib's
        # warning per glyph would leak into the command's output, once per character
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
        if figure.get_layout_engine() is None:
            figure.tight_layout(rect=(0, footer, 1, 1))
        figure.savefig(path, dpi=110)
    plt.close(figure)
    return figure


save_figure = _save  # for figures drawn outside this module


def search_scatter(
    trials: list[dict],
    pareto: list[dict],
    target: str,
    budget_ms: float | None,
    min_accuracy: float | None,
    path: Path,
    score: str = "accuracy",
) -> Figure:
    """Search score (``score`` names it) against latency of every trial; untrained (over
    budget) ones along the bottom."""
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    groups = {
        "trained": [t for t in trials if t["feasible"] and t["state"] == "COMPLETE"],
        "pruned": [t for t in trials if t["state"] == "PRUNED"],
        "over budget (not trained)": [t for t in trials if t["feasible"] is False],
    }
    styles = {
        "trained": ("o", "tab:blue"),
        "pruned": ("s", "tab:gray"),
        "over budget (not trained)": ("x", "tab:red"),
    }
    for name, group in groups.items():
        points = [
            (t["latency_ms"].get(target), t["score"] or 0.0)
            for t in group
            if t["latency_ms"].get(target) is not None
        ]
        if points:
            marker, colour = styles[name]
            axis.scatter(
                *zip(*points, strict=False), marker=marker, color=colour, label=name, alpha=0.8
            )
    if pareto:
        front = sorted((t["latency_ms"][target], t["score"]) for t in pareto)
        axis.step(
            *zip(*front, strict=False),
            where="post",
            color="tab:green",
            marker="*",
            markersize=12,
            label="Pareto front",
        )
    if budget_ms is not None:
        axis.axvline(budget_ms, color="tab:red", linestyle="--", label=f"budget {budget_ms} ms")
    if min_accuracy is not None:
        axis.axhline(
            min_accuracy, color="tab:orange", linestyle=":", label=f"minimum {min_accuracy}"
        )
    axis.set(
        xlabel=f"latency on {target} (ms)",
        ylabel=f"validation {score}",
        title=f"Search: {score} against latency",
        ylim=(-0.03, 1.03),
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    return _save(figure, path)


def latency_histogram(
    samples: list[float],
    stats: dict,
    budget_ms: float | None,
    percentile: str,
    title: str,
    path: Path,
) -> Figure:
    """Runs per latency, up to a little beyond the p99 (and the budget when it is near).

    A few interrupted runs can be hundreds of times the p50; drawn to scale they would squash
    every other run into one bin, so they are counted in a note instead.
    """
    values = np.asarray(samples, dtype=np.float64)
    right = 1.1 * stats["p99_ms"]
    # a budget far to the right is only named: drawing it would squash the histogram
    near_budget = budget_ms if budget_ms is not None and budget_ms <= 2 * right else None
    if near_budget is not None:
        right = max(right, 1.05 * near_budget)
    shown = values[values <= right]
    figure, axis = plt.subplots(figsize=(6.4, 3.4))
    axis.hist(shown, bins=min(60, max(10, len(shown) // 10)), color="tab:blue", alpha=0.8)
    for name, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
        axis.axvline(
            stats[f"{name}_ms"],
            color="black",
            linestyle=style,
            label=f"{name} {stats[f'{name}_ms']:.3g} ms",
        )
    if near_budget is not None:
        axis.axvline(
            near_budget,
            color="tab:red",
            linewidth=2,
            label=f"budget ({percentile}) {near_budget} ms",
        )
    elif budget_ms is not None:
        axis.plot(
            [],
            [],
            color="tab:red",
            linewidth=2,
            label=f"budget ({percentile}) {budget_ms} ms, off scale",
        )
    axis.set_xlim(right=right)
    axis.set(xlabel="latency (ms)", ylabel="runs", title=title)
    axis.legend(fontsize=8)
    notes = []
    if beyond := len(values) - len(shown):
        notes.append(
            (
                f"{beyond} of {len(values)} runs beyond {right:.3g} ms, not shown "
                f"(max {values.max():.3g} ms)",
                "black",
            )
        )
    if stats.get("unstable_reason"):
        notes.append((f"Unstable measurement: {stats['unstable_reason']}", "tab:red"))
    for line, (text, colour) in enumerate(reversed(notes)):
        figure.text(0.01, 0.01 + 0.055 * line, text, fontsize=7, color=colour)
    return _save(figure, path, footer=0.055 * len(notes) + 0.01 if notes else 0.0)


# Past these the confusion matrix would be unreadable or huge (it grew with the square of
# the class count: 150 classes were a 10000 px PNG, 1000 beyond matplotlib's size limit).
MATRIX_MAX_INCHES = 14.0
MATRIX_MAX_CELL_NUMBERS = 30  # classes up to which every cell shows its count
MATRIX_MAX_TICK_LABELS = 50  # class names per axis; beyond, every k-th class is named
MATRIX_LABEL_CHARS = 24


def short_label(name: str, limit: int = MATRIX_LABEL_CHARS) -> str:
    """``name`` cut to ``limit`` characters, the last an ellipsis when it was cut."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def confusion_matrix(matrix: list[list[int]], classes: list[str], title: str, path: Path) -> Figure:
    """True against predicted class counts; bounded in size at any class count.

    Cell counts are written up to ``MATRIX_MAX_CELL_NUMBERS`` classes; beyond
    ``MATRIX_MAX_TICK_LABELS`` only every k-th class is named, and the axis labels say so.
    """
    values = np.asarray(matrix)
    count = len(classes)
    side = min(MATRIX_MAX_INCHES, 1.2 + 0.6 * count)
    figure, axis = plt.subplots(figsize=(side, min(MATRIX_MAX_INCHES, 1.0 + 0.6 * count)))
    axis.imshow(values, cmap="Blues", interpolation="nearest")
    step = max(1, math.ceil(count / MATRIX_MAX_TICK_LABELS))
    shown = range(0, count, step)
    labels = [short_label(classes[index]) for index in shown]
    axis.set_xticks(shown, labels, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(shown, labels, fontsize=8)
    if count <= MATRIX_MAX_CELL_NUMBERS:
        threshold = values.max() / 2 if values.size else 0
        for i in range(count):
            for j in range(count):
                axis.text(
                    j,
                    i,
                    str(int(values[i, j])),
                    ha="center",
                    va="center",
                    color="white" if values[i, j] > threshold else "black",
                    fontsize=8,
                )
    every = f" (1 in {step} of {count} classes named)" if step > 1 else ""
    axis.set(xlabel=f"predicted{every}", ylabel=f"true{every}", title=title)
    return _save(figure, path)


def pr_curves(curves: dict, title: str, path: Path) -> Figure:
    """Precision against recall per class (at IoU 0.5)."""
    figure, axis = plt.subplots(figsize=(5.2, 4.2))
    recall = curves.get("recall", [])
    for name, precision in curves.get("precision", {}).items():
        axis.plot(recall[: len(precision)], precision, label=name)
    axis.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    axis.grid(alpha=0.3)
    if curves.get("precision"):
        axis.legend(fontsize=8)
    return _save(figure, path)


def detection_grid(
    images: np.ndarray,
    samples: list[dict],
    names: list[str],
    title: str,
    path: Path,
    threshold: float | None = None,
) -> Figure:
    """Each validation image twice: ground truth (left) and the artifact's boxes (right).

    ``samples`` hold only the boxes to draw; ``threshold`` is the score they had to reach,
    named in the note on a panel where no box reached it.
    """
    from matplotlib.patches import Rectangle

    rows = len(samples)
    # constrained layout reserves room for the suptitle; tight_layout let it cover the headers
    figure, axes = plt.subplots(
        rows, 2, figsize=(4.4, 2.2 * rows + 0.4), squeeze=False, layout="constrained"
    )
    empty = (
        f"no box with score >= {threshold:g}"
        if threshold is not None
        else "no box reaches the drawing threshold"
    )
    for row, (image, sample) in enumerate(zip(images, samples, strict=False)):
        for col, (boxes, colour, label) in enumerate(
            (
                ([[*b[1:], 1.0, b[0]] for b in sample["truth"]], "lime", "truth"),
                (sample["predictions"], "red", "predicted"),
            )
        ):
            axis = axes[row][col]
            axis.imshow(image)
            for x1, y1, x2, y2, score, cls in boxes:
                axis.add_patch(
                    Rectangle(
                        (x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.2
                    )
                )
                text = names[int(cls)] if col == 0 else f"{names[int(cls)]} {score:.2f}"
                axis.text(x1, y1 - 1, text, color=colour, fontsize=5)
            if col == 1 and not boxes:
                axis.text(
                    0.5,
                    0.5,
                    empty,
                    transform=axis.transAxes,
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white",
                    bbox={"facecolor": "black", "alpha": 0.6, "linewidth": 0},
                )
            axis.set_axis_off()
            if row == 0:
                axis.set_title(label, fontsize=8)
    figure.suptitle(textwrap.fill(title, 50), fontsize=9)
    return _save(figure, path)


def training_curves(
    history: list[dict],
    losses: dict[str, str],
    scores: dict[str, str],
    score_label: str,
    path: Path,
) -> Figure:
    """Losses (left) and validation scores (right) per epoch; the dicts map labels to keys."""
    epochs = [h["epoch"] + 1 for h in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    for label, key in losses.items():
        left.plot(epochs, [h[key] for h in history], label=label)
    left.set(xlabel="epoch", ylabel="loss", title="Loss")
    for label, key in scores.items():
        right.plot(epochs, [h[key] for h in history], label=label)
    right.set(xlabel="epoch", ylabel=score_label, title=score_label.capitalize(), ylim=(0, 1.02))
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    return _save(figure, path)
