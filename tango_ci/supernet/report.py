"""The report's lines for a supernet project: the supernet, and each target's specialisation."""

from __future__ import annotations

import shutil
from pathlib import Path

from tango_ci.rundir import RunDir, read_json


def supernet_lines(search: dict, training: dict) -> list[str]:
    """The search section of a supernet project: what was trained once for every target."""
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
    chosen = result["chosen"]
    budget = result["budget"]
    limit = budget.get("latency_ms")
    fine = (
        f", fine-tuned {result['finetune_epochs']} epochs to {result['val_accuracy']:.4f}"
        if result.get("finetune_epochs")
        else ""
    )
    lines = [
        "",
        f"Specialised subnet: **{chosen['architecture']}**, validation accuracy "
        f"{chosen['accuracy']:.4f} with inherited weights{fine}; {budget['percentile']} "
        f"{chosen['latency_ms']:.3g} ms"
        + (f" against a budget of {limit:g} ms" if limit is not None else "")
        + f", **{result['latency_source']}** for runner {result['runner']} "
        f"({result['latency_source_why']}). "
        f"{result['subnets_scored']} subnets scored; specialisation took "
        f"{result['seconds']:.1f} s.",
    ]
    images = {}
    if (folder / "scatter.png").is_file():
        name = f"specialise-{target}.png"
        shutil.copy2(folder / "scatter.png", out / name)
        images[f"specialise-{target}"] = name
    return lines, images
