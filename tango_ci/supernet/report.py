"""The report's lines for a supernet project: the supernet, and each target's specialisation."""

from __future__ import annotations

import shutil
from pathlib import Path

from tango_ci.rundir import RunDir, read_json

#: what a field of a downloaded run's odd file raises when formatted
_ODD = (KeyError, TypeError, ValueError, AttributeError, OverflowError)


def supernet_lines(search: dict, training: dict) -> list[str]:
    """The search section of a supernet project: what was trained once for every target."""
    try:
        return _supernet_lines(search, training)
    except _ODD:  # a downloaded run's odd search or training record
        return ["### Supernet", "", "(The supernet's records are not in the expected shape.)", ""]


def _supernet_lines(search: dict, training: dict) -> list[str]:
    return [
        "### Supernet",
        "",
        f"One {search.get('family')} supernet trained once for every target "
        f"({training.get('epochs_run')} epochs, sandwich rule"
        f"{', in-place distillation' if training.get('config', {}).get('distill') else ''}), "
        f"from {search.get('smallest')} to {search.get('largest')}, at resolutions "
        f"{', '.join(str(r) for r in search.get('resolutions', []))}. Validation accuracy "
        f"with recalibrated BatchNorm: largest {training.get('val_accuracy', 0):.4f}, "
        f"smallest {training.get('val_accuracy_smallest', 0):.4f}.",
        "",
    ]


def specialise_lines(run: RunDir, target: str, out: Path) -> tuple[list[str], dict[str, str]]:
    """One target's specialisation: the chosen subnet, how its latency was obtained, the time
    it took, and the scatter of every subnet scored (copied into ``out``)."""
    folder = run.stage_dir("specialise") / target
    if not (folder / "result.json").is_file():
        return [], {}
    result = read_json(folder / "result.json")
    try:
        lines = _chosen_lines(result)
    except _ODD:  # a downloaded run's odd file
        lines = ["", f"(specialise/{target}/result.json is not in the expected shape.)"]
    images = {}
    if (folder / "scatter.png").is_file():
        name = f"specialise-{target}.png"
        shutil.copy2(folder / "scatter.png", out / name)
        images[f"specialise-{target}"] = name
    return lines, images


def _chosen_lines(result: dict) -> list[str]:
    chosen = result["chosen"]
    budget = result["budget"]
    limit = budget.get("latency_ms")
    fine = (
        f", fine-tuned {result['finetune_epochs']} epochs to {result['val_accuracy']:.4f}"
        if result.get("finetune_epochs")
        else ""
    )
    return [
        "",
        f"Specialised subnet: **{chosen['architecture']}**, validation accuracy "
        f"{chosen['accuracy']:.4f} with inherited weights{fine}; {budget['percentile']} "
        f"{chosen['latency_ms']:.3g} ms"
        + (f" against a budget of {limit:g} ms" if limit is not None else "")
        + f", **{result['latency_source']}** for runner {result['runner']} "
        f"({result['latency_source_why']}). "
        f"{result['subnets_scored']} subnets scored; specialisation took "
        f"{result['seconds']:.1f} s." + _climb_text(result.get("climb")),
    ]


def _climb_text(climb: object) -> str:
    """How far the climb after NSGA-II moved (nothing when it did not, or the field is odd)."""
    if not isinstance(climb, dict) or not isinstance(climb.get("steps"), list):
        return ""
    steps = climb["steps"]
    if not steps and climb.get("stopped") == "time budget reached":
        return " No time was left to climb from NSGA-II's best subnet."
    if not steps:
        return (
            " No one-step-larger neighbour of NSGA-II's best subnet is more accurate within budget."
        )
    return (
        f" From NSGA-II's best ({climb.get('from')}) a climb through one-step-larger neighbours "
        f"took {len(steps)} step{'s' if len(steps) > 1 else ''} to {climb.get('to')}."
    )
