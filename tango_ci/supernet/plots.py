"""The specialisation figure: every subnet scored, the budget, and the chosen subnet."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from tango_ci.report.plots import save_figure  # sets the Agg backend first


def specialise_scatter(
    samples: list[dict],
    chosen: dict,
    budget_ms: float | None,
    percentile: str,
    title: str,
    path: Path,
) -> Figure:
    """Validation accuracy (inherited weights) against latency of each subnet scored."""
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for feasible, marker, colour, label in (
        (True, "o", "tab:blue", "within budgets"),
        (False, "x", "tab:red", "over a budget"),
    ):
        points = [(s["latency_ms"], s["accuracy"]) for s in samples if s["feasible"] is feasible]
        if points:
            axis.scatter(*zip(*points, strict=True), marker=marker, color=colour, label=label)
    axis.scatter(
        [chosen["latency_ms"]],
        [chosen["accuracy"]],
        marker="*",
        s=260,
        color="tab:green",
        edgecolors="black",
        label=f"chosen: {chosen['architecture']}",
        zorder=3,
    )
    if budget_ms is not None:
        axis.axvline(budget_ms, color="tab:red", linestyle="--", label=f"budget {budget_ms:g} ms")
    axis.set_xlabel(f"latency {percentile} (ms)")
    axis.set_ylabel("validation accuracy (inherited weights)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="lower right")
    return save_figure(figure, path)
