"""Training batches from the decoded images, prepared off the training thread.

The data stage already decoded every image to uint8 arrays, so the set sits in memory once
(as uint8, a quarter of float32). A batch is normalised and augmented when it is needed, in
loader worker processes when the device has cores to spare, and handed over in pinned memory
for CUDA. Every random choice comes from a generator seeded by (seed, epoch, step), so the
batches are the same whatever the number of workers, the device, or a resume in between.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from tango_ci.data.dataset import preprocess


def augment(x: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and translations, scaled by ``strength``."""
    if strength <= 0:
        return x
    n = x.shape[0]
    flip = torch.rand(n, generator=generator) < 0.5 * strength
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    shift = max(1, int(round(x.shape[-1] * 0.125 * strength)))
    padded = nn.functional.pad(x, (shift, shift, shift, shift), mode="replicate")
    dx, dy = torch.randint(0, 2 * shift + 1, (2,), generator=generator).tolist()
    return padded[:, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]


def epoch_order(count: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng((seed, epoch)).permutation(count)


class _EpochSteps(Sampler):
    """Yields (epoch, step) for one epoch; the dataset turns each into a batch."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.epoch = 0

    def __iter__(self):
        return iter([(self.epoch, step) for step in range(self.steps)])

    def __len__(self) -> int:
        return self.steps


class _Batches(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, batch: int, strength: float,
                 seed: int) -> None:
        self.images, self.labels = images, labels
        self.batch, self.strength, self.seed = batch, strength, seed
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, step = key
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, epoch_order(len(self.images), self.seed, epoch))
        index = np.sort(self._order[1][step * self.batch:(step + 1) * self.batch])
        seed = int(np.random.SeedSequence((self.seed, epoch, step)).generate_state(1)[0])
        generator = torch.Generator().manual_seed(seed)
        x = augment(torch.from_numpy(preprocess(self.images[index])), self.strength, generator)
        return x.contiguous(), torch.from_numpy(self.labels[index])


def _single_thread(_worker: int) -> None:
    torch.set_num_threads(1)  # the training process keeps the other cores


class BatchLoader:
    """Batches of one training run; ``epoch(e)`` iterates epoch ``e``'s batches."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, batch: int, augment: float,
                 seed: int, workers: int, pin_memory: bool = False) -> None:
        self.dataset = _Batches(images, labels, batch, augment, seed)
        self.sampler = _EpochSteps(len(self.dataset))
        self.workers = workers
        self.loader = DataLoader(self.dataset, sampler=self.sampler, batch_size=None,
                                 num_workers=workers, persistent_workers=workers > 0,
                                 pin_memory=pin_memory, worker_init_fn=_single_thread,
                                 prefetch_factor=4 if workers else None)

    @property
    def steps(self) -> int:
        return len(self.dataset)

    def epoch(self, epoch: int):
        self.sampler.epoch = epoch
        return iter(self.loader)
