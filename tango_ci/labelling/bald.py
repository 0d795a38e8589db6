"""BALD (Bayesian Active Learning by Disagreement, Houlsby et al. 2011) with MC dropout
(Gal and Ghahramani 2016): the mutual information between an image's label and the network's
weights, estimated from ``samples`` stochastic passes,

    BALD(x) = H[mean_s p_s(y|x)] - mean_s H[p_s(y|x)],

high where the passes are each confident but disagree with one another.

Our networks mostly have no dropout, so dropout (rate ``p``) is applied to the input of the
network's last ``nn.Linear`` by a forward pre-hook; everything else runs in eval mode, so
BatchNorm keeps its running statistics. When that layer's output is the network's output
(torchvision's ResNet, MobileNetV3, DenseNet: the head is the last step), the features are
computed once per batch and only the head is re-run; otherwise the whole network runs once
per sample. The masks come from one seeded generator: the same seed, images and batch give
the same scores.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tango_ci.data.dataset import decode, preprocess
from tango_ci.exceptions import TangoError

EPS = 1e-12


def last_linear(model: nn.Module) -> nn.Linear:
    """The network's last ``nn.Linear`` (in registration order): its classification head."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TangoError(
            f"{type(model).__name__} has no nn.Linear layer to apply MC dropout before; "
            "BALD needs a classification head"
        )
    return linears[-1]


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(EPS).log()).sum(-1)


def mutual_information(probabilities: torch.Tensor) -> torch.Tensor:
    """BALD of (samples, images, classes) probabilities: one value per image, at least 0."""
    mean = probabilities.mean(0)
    return (_entropy(mean) - _entropy(probabilities).mean(0)).clamp_min(0.0)


def _dropped(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    if p == 0:
        return x
    keep = torch.rand(x.shape, generator=generator) >= p
    return x * keep.to(x.device, x.dtype) / (1.0 - p)


@torch.no_grad()
def _batch_probabilities(
    model: nn.Module, head: nn.Linear, x: torch.Tensor, samples: int, p: float, generator
) -> torch.Tensor:
    """(samples, batch, classes) softmax outputs of ``samples`` MC-dropout passes."""
    seen: dict[str, torch.Tensor] = {}

    def keep_input(_module, args):
        seen["features"] = args[0]

    def keep_output(_module, _args, output):
        seen["head"] = output

    hooks = [head.register_forward_pre_hook(keep_input), head.register_forward_hook(keep_output)]
    try:
        logits = model(x)
    finally:
        for hook in hooks:
            hook.remove()
    passes = []
    if logits is seen.get("head"):  # the head is the last step: re-run only the head
        for _ in range(samples):
            passes.append(head(_dropped(seen["features"], p, generator)))
    else:
        hook = head.register_forward_pre_hook(
            lambda _module, args: (_dropped(args[0], p, generator), *args[1:])
        )
        try:
            for _ in range(samples):
                passes.append(model(x))
        finally:
            hook.remove()
    return torch.softmax(torch.stack(passes).double(), dim=-1)


def bald_scores(
    model: nn.Module,
    images: np.ndarray | Iterable[np.ndarray],
    *,
    samples: int = 20,
    p: float = 0.5,
    seed: int = 0,
    batch: int = 128,
) -> np.ndarray:
    """BALD of each uint8 NHWC image under ``samples`` MC-dropout passes of rate ``p``;
    ``images`` is one array, or batches of them (read lazily, so a large pool never sits in
    memory whole).

    Runs where ``model`` is; ``model`` is left in the train/eval mode it came in.
    """
    if samples < 2:
        raise TangoError(f"BALD needs at least 2 MC-dropout samples, not {samples}")
    if not 0 <= p < 1:
        raise TangoError(f"the dropout rate must be in [0, 1), not {p}")
    whole = images if isinstance(images, np.ndarray) else None
    chunks = (
        (whole[start : start + batch] for start in range(0, len(whole), batch))
        if whole is not None
        else images
    )
    head = last_linear(model)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    scores = []
    try:
        for chunk in chunks:
            x = torch.from_numpy(preprocess(chunk)).to(device)
            probabilities = _batch_probabilities(model, head, x, samples, p, generator)
            scores.append(mutual_information(probabilities).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(scores) if scores else np.zeros(0)


def _decoded(path: Path, image_size: int) -> np.ndarray:
    try:
        return decode(path, image_size)
    except Exception as exc:  # an untrusted file: name it, one line
        raise TangoError(f"{path}: not a readable image ({type(exc).__name__})") from None


def kept_scores(
    model: nn.Module,
    files: Iterable[tuple[str, Path]],
    image_size: int,
    *,
    samples: int = 20,
    p: float = 0.5,
    seed: int = 0,
    batch: int = 128,
) -> dict[str, float]:
    """BALD of kept image files, by their name in the log (input hash -> score); each file is
    read as the data stage reads training images (RGB, resized square to ``image_size``), one
    batch at a time."""
    listed = list(files)
    if not listed:
        return {}
    batches = (
        np.stack([_decoded(path, image_size) for _, path in listed[start : start + batch]])
        for start in range(0, len(listed), batch)
    )
    scores = bald_scores(model, batches, samples=samples, p=p, seed=seed)
    return {name: float(s) for (name, _), s in zip(listed, scores, strict=True)}
