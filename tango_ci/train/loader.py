"""Training batches from the decoded images, prepared off the training thread where it pays.

The data stage already decoded every image to uint8 arrays, so the set sits in memory once
(as uint8, a quarter of float32). Every random choice (the epoch's order, each image's flip,
each batch's shift) is drawn in the training process from one seeded generator, in the order
the trainer has always drawn them, so a seed gives the same batches as before, whatever the
number of loader workers or the device. Workers only apply the choices: normalise, flip and
shift. On CUDA the batches come in pinned memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from tango_ci.data.dataset import preprocess


@dataclass(frozen=True)
class BatchPlan:
    """What one batch is: which images, which of them flipped, and the batch's shift."""

    index: torch.Tensor
    flips: torch.Tensor | None = None
    shift: int = 0
    dx: int = 0
    dy: int = 0


def shift_for(width: int, strength: float) -> int:
    return max(1, round(width * 0.125 * strength))


def draw(index: torch.Tensor, width: int, strength: float, generator: torch.Generator) -> BatchPlan:
    """The augmentation choices of one batch (random flips and one translation)."""
    if strength <= 0:
        return BatchPlan(index)
    flips = torch.rand(len(index), generator=generator) < 0.5 * strength
    shift = shift_for(width, strength)
    dx, dy = torch.randint(0, 2 * shift + 1, (2,), generator=generator).tolist()
    return BatchPlan(index, flips, shift, dx, dy)


def apply(x: torch.Tensor, plan: BatchPlan) -> torch.Tensor:
    """Flip and translate (edge pixels repeated) as ``plan`` says."""
    if plan.flips is None:
        return x
    x = torch.where(plan.flips[:, None, None, None], x.flip(3), x)
    s = plan.shift
    padded = nn.functional.pad(x, (s, s, s, s), mode="replicate")
    return padded[:, :, plan.dy : plan.dy + x.shape[2], plan.dx : plan.dx + x.shape[3]]


class _Plans(Sampler):
    """One epoch of batch plans, drawn from the run's generator as batches are asked for."""

    def __init__(
        self, count: int, batch: int, width: int, strength: float, generator: torch.Generator
    ) -> None:
        self.count, self.batch, self.width, self.strength = count, batch, width, strength
        self.generator = generator

    def __iter__(self):
        order = torch.randperm(self.count, generator=self.generator)
        for start in range(0, self.count, self.batch):
            index = order[start : start + self.batch]
            if len(index) < 2:  # batch norm cannot train on one sample
                continue
            yield draw(index, self.width, self.strength, self.generator)

    def __len__(self) -> int:
        return -(-self.count // self.batch)


class _Batches(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, plan: BatchPlan) -> tuple[torch.Tensor, torch.Tensor]:
        index = plan.index.numpy()
        x = apply(torch.from_numpy(preprocess(self.images[index])), plan)
        return x.contiguous(), torch.from_numpy(self.labels[index])


def _single_thread(_worker: int) -> None:
    torch.set_num_threads(1)  # the training process keeps the other cores


class BatchLoader:
    """The batches of one training run; ``generator`` holds the run's random state (saved in
    checkpoints), and each pass over ``epoch()`` draws one epoch from it."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        batch: int,
        augment: float,
        seed: int,
        workers: int,
        pin_memory: bool = False,
    ) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.sampler = _Plans(len(images), batch, images.shape[2], augment, self.generator)
        self.loader = DataLoader(
            _Batches(images, labels),
            sampler=self.sampler,
            batch_size=None,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=pin_memory,
            worker_init_fn=_single_thread,
            prefetch_factor=4 if workers else None,
            # its own generator: iterating must not draw from torch's
            # global one, which builds the next candidate's weights
            generator=torch.Generator().manual_seed(seed),
        )

    def epoch(self):
        return iter(self.loader)
