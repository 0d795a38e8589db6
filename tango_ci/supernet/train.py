"""Supernet training (``search.strategy: supernet``): one training for every target.

Each step follows the sandwich rule: the largest subnet learns from the labels, the smallest
and ``random_subnets`` random subnets learn from the largest's soft predictions (in-place
distillation), and their gradients are summed into one optimiser step. With progressive
shrinking, the first third of the epochs trains the largest network only and the second
opens depth and width. Checkpoints, resume and early stopping work as in the trainer: a run
killed at any moment resumes at its last finished epoch.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tango_ci.context import StageContext
from tango_ci.data.dataset import load_split, preprocess
from tango_ci.models import ElasticNet, get_elastic_family, trained_supernet
from tango_ci.progress import SILENT, Reporter
from tango_ci.report.plots import training_curves
from tango_ci.rundir import read_json, write_json, write_record
from tango_ci.train import checkpoints
from tango_ci.train.device import TrainDevice, device_for
from tango_ci.train.loader import BatchLoader
from tango_ci.train.trainer import evaluate, set_threads, training_parts

KD_TEMPERATURE = 1.0
KD_WEIGHT = 0.5  # the smaller subnets' loss: half labels, half the largest's predictions
VAL_RECALIBRATION_IMAGES = 256


@dataclass(frozen=True)
class SupernetConfig:
    epochs: int
    batch: int
    lr: float
    weight_decay: float
    patience: int | None
    random_subnets: int
    distill: bool
    progressive: bool
    seed: int
    augment: float = 0.5


def default_resolutions(image_size: int) -> tuple[int, ...]:
    """The data's size and three quarters of it (a multiple of 4, at least 8)."""
    smaller = max(8, image_size * 3 // 4 // 4 * 4)
    return tuple(sorted({image_size, smaller}, reverse=True))


def resolutions_of(spec) -> tuple[int, ...]:
    chosen = spec.search.supernet.resolutions
    return (
        tuple(sorted(chosen, reverse=True)) if chosen else default_resolutions(spec.data.image_size)
    )


def build_supernet(spec, classes: list[str]) -> ElasticNet:
    family = get_elastic_family(spec.search.families[0])
    return family.supernet(len(classes), spec.data.image_size, resolutions_of(spec))


def phase_of(epoch: int, config: SupernetConfig) -> str:
    """Progressive shrinking: largest, then depth and width, then everything."""
    if not config.progressive or config.epochs < 3:
        return "all"
    third = config.epochs / 3
    return "largest" if epoch < third else "depth_width" if epoch < 2 * third else "all"


def distillation_start(config: SupernetConfig) -> int:
    """The first epoch with in-place distillation: after a fifth of the epochs (at least 1)."""
    return max(1, config.epochs // 5)


def _distillation(logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    soft = torch.softmax(teacher / KD_TEMPERATURE, dim=1)
    return -(soft * torch.log_softmax(logits / KD_TEMPERATURE, dim=1)).sum(1).mean()


def subnet_accuracy(
    supernet: ElasticNet,
    config: dict,
    calibration: torch.Tensor,
    val: tuple[np.ndarray, np.ndarray],
) -> float:
    """Validation accuracy of one subnet with inherited weights and recalibrated BatchNorm."""
    from tango_ci.models import recalibrate_batchnorm

    network = supernet.extract(config)
    recalibrate_batchnorm(network, calibration)
    accuracy, _, _ = evaluate(network, *val)
    return accuracy


def train_supernet_loop(
    supernet: ElasticNet,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    config: SupernetConfig,
    *,
    device: TrainDevice,
    checkpoint_dir: Path | None = None,
    reporter: Reporter = SILENT,
) -> dict[str, Any]:
    """Train ``supernet`` in place; returns history, best state and resume facts (on the CPU)."""
    space = supernet.space
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    optimizer, scheduler, scaler, loader = training_parts(supernet, train, config, device)
    images = train[0]
    pick = np.random.default_rng(config.seed).choice(
        len(images), min(VAL_RECALIBRATION_IMAGES, len(images)), replace=False
    )
    calibration = torch.from_numpy(preprocess(images[pick]))
    state: dict[str, Any] = {"history": [], "best": -1.0, "best_epoch": -1, "best_state": None}
    start, resumed = 0, None
    last_path = checkpoint_dir / "last.pt" if checkpoint_dir else None
    if last_path is not None and last_path.exists():
        saved = checkpoints.load(last_path)
        supernet.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        loader.generator.set_state(saved["generator"])
        rng.setstate(_rng_state(saved["rng"]))
        for key in ("history", "best", "best_epoch", "best_state"):
            state[key] = saved[key]
        start = resumed = saved["epoch"] + 1
    bar = reporter.task("training the supernet", total=config.epochs)
    bar.update(completed=start)
    try:
        for epoch in range(start, config.epochs):
            if _early_stop(state, epoch, config.patience):
                state["stopped_early"] = True
                break
            metrics = _epoch(supernet, loader, optimizer, scaler, device, config, rng, epoch)
            scheduler.step()
            supernet.to("cpu")
            largest = subnet_accuracy(supernet, space.largest(), calibration, val)
            smallest = subnet_accuracy(supernet, space.smallest(), calibration, val)
            supernet.to(device.torch)
            metrics.update(
                {
                    "epoch": epoch,
                    "phase": phase_of(epoch, config),
                    "val_accuracy": largest,
                    "val_accuracy_smallest": smallest,
                    "val_accuracy_mean": (largest + smallest) / 2,
                    "lr": optimizer.param_groups[0]["lr"],
                }
            )
            state["history"].append(metrics)
            # the whole range must be good, not the largest alone: judge the mean
            if metrics["val_accuracy_mean"] > state["best"]:
                state["best"], state["best_epoch"] = metrics["val_accuracy_mean"], epoch
                state["best_state"] = {
                    k: v.detach().to("cpu", copy=True) for k, v in supernet.state_dict().items()
                }
            if last_path is not None:
                checkpoints.save(
                    {
                        "model": supernet.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict(),
                        "generator": loader.generator.get_state(),
                        "rng": _plain_rng_state(rng.getstate()),
                        "epoch": epoch,
                        **{k: state[k] for k in ("history", "best", "best_epoch", "best_state")},
                    },
                    last_path,
                )
            bar.update(completed=epoch + 1, loss=metrics["train_loss"], accuracy=largest)
    finally:
        bar.close()
        supernet.to("cpu")
    state["resumed_from"] = resumed
    return state


def _early_stop(state: dict, epoch: int, patience: int | None) -> bool:
    best = state["best_epoch"]
    return patience is not None and best >= 0 and epoch - best > patience


def _plain_rng_state(state: tuple) -> list:
    """``random.Random``'s state as lists of ints (what weights-only loading accepts)."""
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_state(saved: list) -> tuple:
    version, internal, gauss = saved
    return (int(version), tuple(int(v) for v in internal), gauss)


def _epoch(
    supernet: ElasticNet,
    loader: BatchLoader,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: TrainDevice,
    config: SupernetConfig,
    rng: random.Random,
    epoch: int,
) -> dict[str, Any]:
    space = supernet.space
    phase = phase_of(epoch, config)
    # an untrained largest subnet predicts near-uniform classes: distilling from it would pull
    # the others towards chance, so distillation starts once it has learnt for a while
    distill = config.distill and epoch >= distillation_start(config)
    supernet.train()
    began, seen = time.perf_counter(), 0
    total = torch.zeros((), device=device.torch)
    for x, y in loader.epoch():
        x = x.to(device.torch, non_blocking=True)
        y = y.to(device.torch, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        subnets = [space.largest()]
        if phase != "largest":
            subnets.append(space.smallest())
            subnets += [space.sample(rng, phase) for _ in range(config.random_subnets)]
        teacher = None
        for index, subnet in enumerate(subnets):
            supernet.set_active(subnet)
            with torch.autocast(
                device_type=device.kind,
                dtype=device.amp_dtype,
                enabled=device.amp_dtype is not None,
            ):
                logits = supernet(x).float()
            loss = nn.functional.cross_entropy(logits, y)
            if index > 0 and teacher is not None and distill:
                loss = (1 - KD_WEIGHT) * loss + KD_WEIGHT * _distillation(logits, teacher)
            if index == 0:
                teacher = logits.detach()
                total += loss.detach() * len(y)
            scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        seen += len(y)
    seconds = time.perf_counter() - began
    return {
        "train_loss": total.item() / max(seen, 1),
        "seconds": round(seconds, 3),
        "images_per_s": round(seen / max(seconds, 1e-9), 1),
        "subnets_per_step": 1 if phase == "largest" else 2 + config.random_subnets,
        "distilled": distill,
    }


def train_supernet(ctx: StageContext) -> None:
    """The train stage of a supernet project: writes ``best.pt`` (the supernet's weights),
    ``model.json``, history, metrics and curves in the train stage folder."""
    spec, folder = ctx.spec, ctx.folder
    set_threads()
    device = device_for(spec)
    ctx.reporter.log(f"training the supernet on {device.name} ({device.precision})")
    ctx.run.require("train", "search", "the search's record")
    data = ctx.run.stage_dir("data")
    classes = read_json(data / "classes.json")
    train, val = load_split(data, "train"), load_split(data, "val")
    torch.manual_seed(spec.search.seed)
    supernet = build_supernet(spec, classes)
    config = SupernetConfig(
        epochs=spec.train.epochs,
        batch=spec.train.batch,
        lr=spec.train.lr,
        weight_decay=spec.train.weight_decay,
        patience=spec.train.patience,
        random_subnets=spec.search.supernet.random_subnets,
        distill=spec.search.supernet.distill,
        progressive=spec.search.supernet.progressive,
        seed=spec.search.seed,
    )
    checkpoint_dir = folder / "checkpoints"
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    state = train_supernet_loop(
        supernet,
        train,
        val,
        config,
        device=device,
        checkpoint_dir=checkpoint_dir,
        reporter=ctx.reporter,
    )
    if state["resumed_from"] is not None:
        ctx.reporter.log(f"resumed supernet training at epoch {state['resumed_from'] + 1}")
    if state["best_state"] is None:
        raise RuntimeError("supernet training ended without best weights")
    torch.save(state["best_state"], folder / "best.pt")
    best = state["history"][state["best_epoch"]]
    info = trained_supernet(
        spec.task,
        spec.search.families[0],
        classes,
        spec.data.image_size,
        resolutions_of(spec),
        parameters=sum(p.numel() for p in supernet.parameters()),
    )
    write_record(folder, info)
    write_json(folder / "history.json", state["history"])
    metrics = {
        "val_accuracy": best["val_accuracy"],
        "val_accuracy_smallest": best["val_accuracy_smallest"],
        "best_epoch": state["best_epoch"],
        "epochs_run": len(state["history"]),
        "stopped_early": bool(state.get("stopped_early")),
        "resumed_from_epoch": state["resumed_from"],
        "seconds": round(time.perf_counter() - began, 1),
        "config": config.__dict__,
    }
    write_json(folder / "metrics.json", metrics)
    training_curves(
        state["history"],
        {"train (sandwich)": "train_loss"},
        {"largest subnet": "val_accuracy", "smallest subnet": "val_accuracy_smallest"},
        "accuracy",
        folder / "curves.png",
    )
    for name in ("best.pt", "model.json", "history.json", "metrics.json", "curves.png"):
        ctx.recorder.output_file(name.split(".")[0], folder / name)
    ctx.recorder.summary.update(
        {
            "supernet": spec.search.families[0],
            "val_accuracy": best["val_accuracy"],
            "val_accuracy_smallest": best["val_accuracy_smallest"],
            "epochs": len(state["history"]),
            "best_epoch": state["best_epoch"],
            "architecture": info.architecture,
            "parameters": info.parameters,
            "device": device.describe(),
        }
    )
