"""The drift report: Markdown with one line per test, and plots people look at first."""

from __future__ import annotations

from pathlib import Path

import numpy as np

NAMES = {
    "outputs_mmd": "outputs, MMD (permutation p-value)",
    "outputs_ks": "outputs, KS per feature (Bonferroni)",
    "class_mix": "predicted class mix, chi-square",
    "inputs_mmd": "input image statistics, MMD (permutation p-value)",
}


def write_report(
    result: dict,
    ref_out: np.ndarray,
    cur_out: np.ndarray,
    ref_classes: np.ndarray,
    cur_classes: np.ndarray,
    labels: list[str],
    out: Path,
) -> None:
    lines = [
        f"# Drift report: {'**drift**' if result['drift'] else 'no drift'}",
        "",
        f"{result['records']} answers of version `{result['version']}` ({result['source']}) "
        f"against {result['reference_records']} reference answers kept in the bundle; each "
        f"test's p-value against alpha {result['alpha']:g} / {len(result['checks'])} = "
        f"{result['threshold']:.4g}.",
        "",
        "| test | p-value | verdict |",
        "|---|---|---|",
    ]
    for name, check in result["checks"].items():
        verdict = "**drift**" if check["drift"] else "no drift"
        lines.append(f"| {NAMES.get(name, name)} | {check['p_value_corrected']:.4g} | {verdict} |")
    for name in result["skipped"]:
        lines.append(f"| {NAMES.get(name, name)} | – | not tested (below) |")
    if result["skipped"]:
        lines += ["", *(f"- {reason}" for reason in result["skipped"].values())]
    confidence = result["mean_confidence"]
    if confidence["reference"] is not None:
        lines += [
            "",
            f"Mean confidence (top probability): reference {confidence['reference']:.3f}, "
            f"now {confidence['current']:.3f}.",
        ]
    lines += ["", "![outputs](drift-outputs.png) ![classes](drift-classes.png)", ""]
    (out / "drift.md").write_text("\n".join(lines))
    _plots(ref_out, cur_out, ref_classes, cur_classes, labels, result["answers"], out)


def _plots(ref_out, cur_out, ref_classes, cur_classes, labels, kind: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["text.parse_math"] = False  # names are text, never TeX

    figure, axis = plt.subplots(figsize=(5, 3.2))
    if kind == "probabilities":
        values = (ref_out.max(1), cur_out.max(1))
        axis.set_xlabel("top probability")
    else:
        values = (ref_out[:, 0], cur_out[:, 0])
        axis.set_xlabel("boxes per image")
    low, high = min(v.min() for v in values), max(v.max() for v in values) + 1e-9
    bins = np.linspace(low, high, 21).tolist()
    axis.hist(values[0], bins=bins, alpha=0.6, density=True, label="reference")
    axis.hist(values[1], bins=bins, alpha=0.6, density=True, label="now")
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / "drift-outputs.png", dpi=100)
    plt.close(figure)
    figure, axis = plt.subplots(figsize=(5, 3.2))
    count = len(labels)
    ref = np.bincount(ref_classes, minlength=count)[:count]
    cur = np.bincount(cur_classes, minlength=count)[:count]
    x = np.arange(count)
    axis.bar(x - 0.2, ref / max(1, ref.sum()), 0.4, label="reference")
    axis.bar(x + 0.2, cur / max(1, cur.sum()), 0.4, label="now")
    axis.set_xticks(x, labels, rotation=45, ha="right")
    axis.set_ylabel("share of answers")
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / "drift-classes.png", dpi=100)
    plt.close(figure)
