"""The report's baselines table: the search's winner beside the fixed networks of
``search.baselines``, trained with the same budget and timed on the same targets."""

from __future__ import annotations

from pathlib import Path

from tango_ci.rundir import read_json

BASELINES_FILE = "baselines.json"


def winner_entry(train_dir: Path, search_dir: Path) -> dict:
    """The winner as a baselines row: the train stage's network and validation accuracy, the
    search's latency for it (timed as the baselines are)."""
    model = read_json(train_dir / "model.json")
    metrics = read_json(train_dir / "metrics.json")
    best = read_json(search_dir / "best.json")
    return {
        "name": model["name"],
        "architecture": model.get("architecture"),
        "parameters": model.get("parameters"),
        "val_accuracy": metrics.get("val_accuracy"),
        "latency_ms": best.get("latency_ms", {}),
        "fits_budgets": bool(best.get("feasible")),
    }


def _number(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def baselines_table(baselines: dict, winner: dict) -> list[str]:
    """Markdown lines: one row per network, the winner first and marked; columns parameters,
    validation accuracy, latency on each target and whether every budget holds."""
    percentiles = baselines.get("percentiles", {})
    targets = list(percentiles) or list(winner["latency_ms"])
    lines = [
        "",
        "### Against baselines",
        "",
        "Baselines train with the winner's budget (the same epochs, patience and training "
        "hyper-parameters) and are timed on each target as search candidates are.",
        "",
        "| network | parameters | validation accuracy | "
        + " | ".join(f"{t} {percentiles.get(t, 'p95')} ms" for t in targets)
        + " | fits budgets |",
        "|---|---|---|" + "---|" * len(targets) + "---|",
    ]
    rows = [(f"**{winner['name']}** (winner)", winner)] + [
        (entry["name"], entry) for entry in baselines.get("baselines", [])
    ]
    for label, entry in rows:
        parameters = entry.get("parameters")
        latency = entry.get("latency_ms", {})
        fits = "yes" if entry.get("fits_budgets") else _violated(entry)
        lines.append(
            f"| {label} | {f'{parameters:,}' if parameters else '–'} | "
            f"{_number(entry.get('val_accuracy'), '.4f')} | "
            + " | ".join(_number(latency.get(t), ".3g") for t in targets)
            + f" | {fits} |"
        )
    return [*lines, ""]


def _violated(entry: dict) -> str:
    broken = sorted({f"{v['budget']} on {v['target']}" for v in entry.get("violations", [])})
    return f"no ({', '.join(broken)})" if broken else "no"


def baselines_markdown(train_dir: Path, search_dir: Path) -> list[str]:
    """The table for a run whose train stage wrote ``baselines.json`` (none otherwise)."""
    path = train_dir / BASELINES_FILE
    if not path.is_file():
        return []
    return baselines_table(read_json(path), winner_entry(train_dir, search_dir))
