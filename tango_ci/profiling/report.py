"""The accuracy report of a runner's latency models: ``runners/<runner>/latency/report.md`` and
one scatter of predicted against measured latency per engine and precision."""

from __future__ import annotations

from pathlib import Path

from tango_ci.profiling.fit import FittedPair
from tango_ci.profiling.noise import verdict


def _pct(value: float) -> str:
    return f"{value:.1%}"


def error_row(label: str, e: dict) -> str:
    spearman = "n/a" if e["spearman"] != e["spearman"] else f"{e['spearman']:.3f}"
    return (
        f"| {label} | {e['count']} | {_pct(e['mape'])} | {_pct(e['within_5'])} | "
        f"{_pct(e['within_10'])} | {e['rmse_ms']:.3g} | {spearman} |"
    )


ERROR_HEADER = [
    "| model | held-out networks | MAPE | within ±5% | within ±10% | RMSE ms | Spearman |",
    "|---|---|---|---|---|---|---|",
]


def scatter(fitted: FittedPair, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["text.parse_math"] = False  # names are text, never TeX

    measured = [r["measured"] for r in fitted.heldout]
    figure, axis = plt.subplots(figsize=(5, 5))
    low, high = min(measured) * 0.8, max(measured) * 1.25
    axis.plot([low, high], [low, high], color="black", linewidth=0.8)
    axis.fill_between([low, high], [low * 0.9, high * 0.9], [low * 1.1, high * 1.1], alpha=0.15)
    axis.scatter(measured, [r["flops"] for r in fitted.heldout], s=12, label="FLOPs-linear")
    axis.scatter(
        measured, [r["predicted"] for r in fitted.heldout], s=12, label=fitted.model.method
    )
    axis.set(
        xscale="log",
        yscale="log",
        xlabel="measured p50 (ms)",
        ylabel="predicted p50 (ms)",
        title=f"{fitted.model.runner}: {fitted.engine} {fitted.precision} (held out)",
    )
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def noise_lines(pair: FittedPair) -> list[str]:
    """The device's own re-measurement spread as a table row (the floor under the model's
    error), and the warning when the device is too noisy for any model."""
    found = pair.model.metadata.get("noise_floor")
    if not isinstance(found, dict):
        return []
    lines = [
        f"| the device again (noise floor) | {found['count']} | {_pct(found['mape'])} | "
        f"{_pct(found['within_5'])} | {_pct(found['within_10'])} | | |"
    ]
    warning = verdict(pair.engine, pair.precision, found)
    return lines + (["", f"**Noisy device.** {warning}"] if warning else [])


def write_report(folder: Path, runner: str, fitted: list[FittedPair]) -> Path:
    """Write the report and the scatters; returns the report's path."""
    lines = [
        f"# Latency models of runner `{runner}`",
        "",
        "Made by `tango runner profile` on the device. Each model predicts a network's p50 "
        "from its ONNX graph; tail percentiles use the device's median tail ratios. Errors are "
        "on networks the fit never saw (30% held out, chosen by a hash of the network).",
        "",
    ]
    for pair in fitted:
        meta = pair.model.metadata
        counts = meta["samples"]
        image = f"{pair.engine}-{pair.precision}.png"
        scatter(pair, folder / image)
        lines += [
            f"## {pair.engine} {pair.precision}",
            "",
            f"Method kept: **{pair.model.method}**; {counts['networks_fitted']} networks "
            f"fitted, {counts['networks_held_out']} held out, {counts['blocks']} blocks; "
            f"{counts['failed']} samples failed to build or run. Host: "
            f"{meta['host']['cpu']}, {pair.model.threads} thread(s).",
            "",
            *ERROR_HEADER,
            error_row(pair.model.method, meta["heldout"]),
            error_row("flops-linear (baseline)", meta["heldout_flops_linear"]),
            *noise_lines(pair),
            "",
            "Cross-validated on the fitted networks (5 folds):",
            "",
            *ERROR_HEADER,
            *(error_row(m, e) for m, e in meta["cross_validation"].items()),
            "",
            f"![{pair.engine} {pair.precision}]({image})",
            "",
        ]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path
