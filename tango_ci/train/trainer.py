"""One training loop for search trials and the final training.

Checkpoints (``last.pt`` every epoch, ``best.pt`` on improvement) are written atomically, so a
run killed at any moment resumes from its last finished epoch with nothing lost; they are read
back only as plain tensors and only when their recorded sha256 matches (``checkpoints.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tango_ci.data.dataset import preprocess
from tango_ci.progress import SILENT, Reporter
from tango_ci.train import checkpoints
from tango_ci.train.device import TrainDevice, available_cores
from tango_ci.train.loader import BatchLoader


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch: int = 32
    lr: float = 0.01
    weight_decay: float = 1e-4
    patience: int | None = None  # early stopping; None trains every epoch
    augment: float = 0.5  # 0 = none, 1 = strongest
    seed: int = 0


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best_accuracy: float = 0.0
    best_epoch: int = -1
    stopped_early: bool = False
    resumed_from: int | None = None
    best_state: dict | None = None


def set_threads(threads: int | None = None) -> int:
    """Use the cores we have; importing ultralytics would otherwise leave torch on one."""
    count = max(1, threads or available_cores())
    torch.set_num_threads(count)
    return count


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, batch: int = 256
) -> tuple[float, float, np.ndarray]:
    """Accuracy, mean loss and predicted labels of ``model`` on uint8 NHWC images.

    Runs where the model is, in fp32 (the accuracy that the gate compares against).
    """
    model.eval()
    device = _device_of(model)
    predictions, losses = [], []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(preprocess(images[start : start + batch])).to(device)
        y = torch.from_numpy(labels[start : start + batch]).to(device)
        logits = model(x).float()
        losses.append(nn.functional.cross_entropy(logits, y, reduction="sum").item())
        predictions.append(logits.argmax(1).cpu().numpy())
    predicted = np.concatenate(predictions)
    return float((predicted == labels).mean()), float(sum(losses) / len(labels)), predicted


def training_parts(model: nn.Module, train: tuple[np.ndarray, np.ndarray], config, device):
    """What every training loop here uses: ``model`` moved to ``device``, AdamW, a cosine
    schedule over ``config.epochs``, a gradient scaler (fp16 on CUDA) and the batch loader.
    ``config`` has epochs, batch, lr, weight_decay, augment and seed."""
    model.to(device.torch)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    scaler = torch.amp.GradScaler("cuda", enabled=device.precision == "fp16")
    images, labels = train
    loader = BatchLoader(
        images,
        labels,
        batch=config.batch,
        augment=config.augment,
        seed=config.seed,
        workers=device.loader_workers(-(-len(images) // config.batch)),
        pin_memory=device.kind == "cuda",
    )
    return optimizer, scheduler, scaler, loader


def train_model(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    config: TrainConfig,
    *,
    device: TrainDevice | None = None,
    checkpoint_dir: Path | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    reporter: Reporter = SILENT,
    description: str = "training",
) -> TrainResult:
    """Train ``model`` in place on ``device`` (default: the CPU); returns the history and the
    best state (by val accuracy), on the CPU, with ``model`` back on the CPU.

    ``on_epoch(epoch, metrics)`` may raise to stop (search pruning). With ``checkpoint_dir``,
    an existing ``last.pt`` is resumed.
    """
    device = device or TrainDevice(kind="cpu", threads=torch.get_num_threads())
    torch.manual_seed(config.seed)
    optimizer, scheduler, scaler, loader = training_parts(model, train, config, device)
    result = TrainResult()
    start_epoch = 0
    images = train[0]
    last_path = checkpoint_dir / "last.pt" if checkpoint_dir else None
    if last_path is not None and last_path.exists():
        state = checkpoints.load(last_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        loader.generator.set_state(state["generator"])
        result.history = state["history"]
        result.best_accuracy, result.best_epoch = state["best_accuracy"], state["best_epoch"]
        result.best_state = state["best_state"]
        start_epoch = result.resumed_from = state["epoch"] + 1
    bar = reporter.task(description, total=config.epochs)
    bar.update(completed=start_epoch)
    try:
        for epoch in range(start_epoch, config.epochs):
            if _early_stop(result, epoch, config.patience):
                result.stopped_early = True
                break
            began = time.perf_counter()
            model.train()
            # summed on the device: one synchronisation per epoch, not per step
            total_loss = torch.zeros((), device=device.torch)
            correct = torch.zeros((), dtype=torch.long, device=device.torch)
            seen = 0
            for x, y in loader.epoch():
                x = x.to(device.torch, non_blocking=True)
                y = y.to(device.torch, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(
                    device_type=device.kind,
                    dtype=device.amp_dtype,
                    enabled=device.amp_dtype is not None,
                ):
                    logits = model(x)
                    loss = nn.functional.cross_entropy(logits.float(), y)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                total_loss += loss.detach() * len(y)
                correct += (logits.argmax(1) == y).sum()
                seen += len(y)
            scheduler.step()
            trained = time.perf_counter() - began
            val_accuracy, val_loss, _ = evaluate(model, *val)
            metrics = {
                "epoch": epoch,
                "train_loss": total_loss.item() / len(images),
                "train_accuracy": correct.item() / len(images),
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": round(time.perf_counter() - began, 3),
                "images_per_s": round(seen / max(trained, 1e-9), 1),
            }
            result.history.append(metrics)
            if val_accuracy > result.best_accuracy or result.best_epoch < 0:
                result.best_accuracy, result.best_epoch = val_accuracy, epoch
                result.best_state = {
                    k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
                }
                if checkpoint_dir is not None:
                    checkpoints.save(
                        {"model": result.best_state, "epoch": epoch, "val_accuracy": val_accuracy},
                        checkpoint_dir / "best.pt",
                    )
            if last_path is not None:
                checkpoints.save(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict(),
                        "generator": loader.generator.get_state(),
                        "epoch": epoch,
                        "history": result.history,
                        "best_accuracy": result.best_accuracy,
                        "best_epoch": result.best_epoch,
                        "best_state": result.best_state,
                    },
                    last_path,
                )
            bar.update(completed=epoch + 1, loss=metrics["train_loss"], accuracy=val_accuracy)
            if on_epoch is not None:
                on_epoch(epoch, metrics)
    finally:
        bar.close()
        model.to("cpu")
    return result


def _early_stop(result: TrainResult, epoch: int, patience: int | None) -> bool:
    return patience is not None and result.best_epoch >= 0 and epoch - result.best_epoch > patience


def config_dict(config: TrainConfig) -> dict:
    return asdict(config)
