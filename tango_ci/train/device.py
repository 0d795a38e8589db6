"""Where training runs: the device, its mixed precision, and how many threads and loader workers.

``train.device`` says what the project wants: ``auto`` (CUDA when this host has it, else the
CPU), ``cpu``, ``cuda`` or ``cuda:N``. A request this host cannot meet is refused before any
work, naming the field and the training runner. On CUDA, training uses mixed precision:
bf16 where the GPU supports it, else fp16 with a gradient scaler, and loader workers on the
cores left after the one that feeds the GPU. On a CPU every core runs the training threads
(ultralytics would leave one of two idle) and batches are made in the training process
(``train.workers`` overrides both defaults).

Latency is never measured here: candidates are timed for their targets, whatever trains them.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from typing import Any

from tango_ci.exceptions import TangoError

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:[0-9]{1,2})?")
# below this many batches per epoch, starting worker processes costs more than it saves
MIN_BATCHES_FOR_WORKERS = 16


class DeviceUnavailable(TangoError):
    _template = (
        "{where}train.device: {requested} requested, but {reason} (training runner "
        "'{runner}'); use auto or cpu, or train on a host with that GPU"
    )


@dataclass(frozen=True)
class TrainDevice:
    """A resolved training device; ``describe()`` is what manifests record."""

    kind: str  # "cpu" or "cuda"
    index: int | None = None
    name: str = "cpu"
    memory_mb: int | None = None
    precision: str = "fp32"  # what autocast computes in: fp32, bf16 or fp16
    threads: int = 1
    workers: int | None = None  # None: decided per dataset by loader_workers()
    requested: str = "auto"

    @property
    def torch(self) -> str:
        """The device string torch takes: ``cpu`` or ``cuda:N``."""
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index or 0}"

    @property
    def ultralytics(self) -> str:
        """The device string ultralytics takes: ``cpu`` or the GPU index."""
        return "cpu" if self.kind == "cpu" else str(self.index or 0)

    @property
    def amp_dtype(self) -> Any:
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def loader_workers(self, batches_per_epoch: int) -> int:
        """Worker processes for a loader of this many batches per epoch.

        On a CPU, none: measured on 2 cores (benchmarks/training.py), a worker process took a
        core from the training threads and cost 11-21% of the throughput; the threads are
        the gain there. On CUDA, the cores but one, so the GPU never waits for a batch.
        """
        if self.workers is not None:
            return self.workers
        if self.kind == "cpu" or batches_per_epoch < MIN_BATCHES_FOR_WORKERS:
            return 0
        return min(8, max(1, self.threads - 1))

    def describe(self) -> dict:
        return asdict(self)


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_device(
    requested: str = "auto",
    *,
    workers: int | None = None,
    runner: str = "this host",
    where: str = "",
) -> TrainDevice:
    """The device ``requested`` names on this host; one clear error when it has none.

    ``where`` prefixes errors (the project file); ``runner`` names the training runner.
    """
    import torch

    if not DEVICE_PATTERN.fullmatch(requested):
        raise TangoError(
            f"{where}train.device: '{requested[:40]}' is not auto, cpu, cuda or cuda:N"
        )
    threads = available_cores()
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return TrainDevice(kind="cpu", threads=threads, workers=workers, requested=requested)
    if not torch.cuda.is_available():
        raise DeviceUnavailable(
            where=where,
            requested=requested,
            runner=runner,
            reason="this host has no usable CUDA device",
        )
    index = int(requested.split(":")[1]) if ":" in requested else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceUnavailable(
            where=where,
            requested=requested,
            runner=runner,
            reason=f"this host has {count} CUDA device(s)",
        )
    properties = torch.cuda.get_device_properties(index)
    precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return TrainDevice(
        kind="cuda",
        index=index,
        name=properties.name,
        memory_mb=properties.total_memory // (1024 * 1024),
        precision=precision,
        threads=threads,
        workers=workers,
        requested=requested,
    )


def device_for(spec) -> TrainDevice:
    """The training device of a project (``train.device`` and ``train.workers``)."""
    from tango_ci.rundir import display

    where = f"{display(spec.path)}: " if spec.path is not None else ""
    return resolve_device(
        spec.train.device, workers=spec.train.workers, runner=spec.train.runner, where=where
    )
