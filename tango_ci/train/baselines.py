"""Baselines: fixed family/level pairs (``search.baselines``) trained with the winner's budget
and measured on every target, so a reviewer sees what the search bought.

Each baseline trains with the same :class:`TrainConfig` as the winner (``train.epochs``,
``patience``, the winner's lr, weight decay, batch and augmentation) and is timed as search
candidates are: the task's search space exports the network, and
:func:`~tango_ci.bench.feasibility.measure_candidate` builds and times it on each target.
``baselines.json`` is rewritten after each baseline, so a rerun of the stage keeps the finished
ones; an interrupted baseline resumes from its checkpoint.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from tango_ci.bench.feasibility import latency_sources, measure_candidate
from tango_ci.context import StageContext
from tango_ci.data.dataset import load_split
from tango_ci.models import build_model
from tango_ci.plugins import get_task
from tango_ci.report.baselines import BASELINES_FILE
from tango_ci.rundir import read_json, write_json
from tango_ci.spec.models import Baseline
from tango_ci.train.device import TrainDevice, device_for
from tango_ci.train.trainer import TrainConfig, evaluate, train_model

SCHEMA_VERSION = 1


def baseline_name(baseline: Baseline) -> str:
    return f"{baseline.family}-{baseline.level}"


def _finished(path: Path, config: dict) -> dict[str, dict]:
    """Baselines an earlier attempt of this stage finished with the same training config."""
    if not path.is_file():
        return {}
    earlier = read_json(path)
    if earlier.get("schema_version") != SCHEMA_VERSION or earlier.get("config") != config:
        return {}
    return {entry["name"]: entry for entry in earlier.get("baselines", [])}


def train_baselines(
    ctx: StageContext, config: TrainConfig, device: TrainDevice | None = None
) -> list[dict]:
    """Train, evaluate and measure every ``search.baselines`` entry; writes ``baselines.json``
    in the stage folder and returns its entries (none when the spec names no baseline)."""
    spec = ctx.spec
    if not spec.search.baselines:
        return []
    sources = latency_sources(spec)  # refuses a target that cannot be measured here
    device = device or device_for(spec)
    data = ctx.run.stage_dir("data")
    classes = read_json(data / "classes.json")
    splits = load_split(data, "train"), load_split(data, "val")
    space = get_task(spec.task).search_space(ctx, device)  # exports as the search's candidates
    path = ctx.folder / BASELINES_FILE
    settings = asdict(config)
    done = _finished(path, settings)
    entries: list[dict] = []
    for baseline in spec.search.baselines:
        name = baseline_name(baseline)
        entry = done.get(name)
        if entry is None:
            ctx.reporter.log(f"baseline {name}: training with the winner's budget")
            entry = _train_one(ctx, baseline, config, device, len(classes), splits)
            entry.update(_measure(ctx, baseline, space, sources))
        entries.append(entry)
        write_json(
            path,
            {
                "schema_version": SCHEMA_VERSION,
                "config": settings,
                "percentiles": {t.name: t.constraints.latency_percentile for t in spec.targets},
                "baselines": entries,
            },
        )
    shutil.rmtree(ctx.folder / "baselines", ignore_errors=True)  # checkpoints of finished ones
    ctx.recorder.output_file("baselines", path)
    ctx.recorder.summary["baselines"] = {
        e["name"]: {"val_accuracy": e["val_accuracy"], "fits_budgets": e["fits_budgets"]}
        for e in entries
    }
    return entries


def _train_one(
    ctx: StageContext,
    baseline: Baseline,
    config: TrainConfig,
    device: TrainDevice,
    classes: int,
    splits: tuple[Any, Any],
) -> dict:
    name = baseline_name(baseline)
    torch.manual_seed(ctx.spec.search.seed)  # the initial weights, as for the winner
    model = build_model(baseline.family, baseline.level, classes)
    checkpoints = ctx.folder / "baselines" / name / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    train, val = splits
    result = train_model(
        model,
        train,
        val,
        config,
        checkpoint_dir=checkpoints,
        device=device,
        reporter=ctx.reporter,
        description=f"baseline {name}",
    )
    if result.best_state is None:  # config.epochs >= 1, so the first epoch sets it
        raise RuntimeError(f"baseline {name}: training ended without best weights")
    model.load_state_dict(result.best_state)
    accuracy, loss, _ = evaluate(model.to(device.torch), *val)
    model.to("cpu")
    return {
        "name": name,
        "family": baseline.family,
        "level": baseline.level,
        "val_accuracy": accuracy,
        "val_loss": loss,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
    }


def _measure(ctx: StageContext, baseline: Baseline, space: Any, sources: dict) -> dict:
    """The baseline's architecture built and timed on every target, as a search candidate."""
    workdir = ctx.folder / "baselines" / baseline_name(baseline) / "measure"
    params = {"family": baseline.family, "level": baseline.level}
    onnx_path, model_dir, size, about = space.export(params, workdir)
    measured = measure_candidate(
        onnx_path, model_dir, ctx.spec, workdir, space.calibration, size, sources
    )
    percentiles = {t.name: t.constraints.latency_percentile for t in ctx.spec.targets}
    violations = [dict(v, target=name) for name, m in measured.items() for v in m["violations"]]
    return {
        "architecture": about.get("architecture"),
        "parameters": about.get("parameters"),
        "latency_ms": {
            name: m["latency"][f"{percentiles[name]}_ms"] for name, m in measured.items()
        },
        "engines": {name: f"{m['engine']} {m['precision']}" for name, m in measured.items()},
        "latency_source": {name: m["latency_source"] for name, m in measured.items()},
        "violations": violations,
        "fits_budgets": not violations,
    }
