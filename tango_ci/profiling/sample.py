"""What a runner profile times: a designed sample of blocks and of whole networks.

Blocks (a convolution with its norm and activation, a depthwise convolution, an inverted
residual, a residual basic block, a dense layer) at the widths, kernels, strides and resolutions
the families use; whole networks from every search space: the classification families at each
level, supernet subnets drawn at random from both elastic families, and YOLO scales with their
depth and width multipliers, each at several input sizes. The design is a pure function of the
seed and the counts, so a profile that was killed draws the same samples again and skips those
already measured.

Every sample takes an image batch ``(batch, 3, size, size)`` (what the bench worker feeds);
a block starts with a 1x1 convolution from the three channels to its own width.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any

CLASSES = 10
BLOCKS = ("conv", "dwconv", "inverted", "basic", "dense")
WIDTHS = (16, 24, 32, 48, 64, 96, 128, 160, 256)
BLOCK_RESOLUTIONS = (8, 16, 32, 56)
IMAGE_SIZES = (32, 48, 64, 96, 128)
LEVEL_CHOICES = 3  # xs, s, m: the levels searches use by default
YOLO_SIZES = (96, 128, 160, 224)
YOLO_FAMILIES = ("yolov8", "yolo11")
YOLO_SCALES = ("n", "s")
MULTIPLIERS = (0.5, 0.75, 1.0)


@dataclass(frozen=True)
class ProfileSample:
    spec: dict[str, Any]

    @property
    def id(self) -> str:
        text = json.dumps(self.spec, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def is_block(self) -> bool:
        return self.spec["kind"] == "block"

    @property
    def size(self) -> int:
        return int(self.spec["size"])

    @property
    def batch(self) -> int:
        return int(self.spec["batch"])

    def describe(self) -> str:
        spec = self.spec
        if spec["kind"] == "block":
            return (
                f"{spec['block']} {spec['channels']}->{spec['out']} k{spec['kernel']} "
                f"s{spec['stride']} @{spec['size']}"
            )
        if spec["kind"] == "family":
            return f"{spec['family']}-{spec['level']} @{spec['size']}"
        if spec["kind"] == "subnet":
            return f"{spec['family']} subnet @{spec['size']}"
        return f"{spec['family']}{spec['scale']}-d{spec['depth']}-w{spec['width']} @{spec['size']}"


def _block(rng: random.Random, batch: int) -> dict:
    kind = rng.choice(BLOCKS)
    channels = rng.choice(WIDTHS)
    spec = {
        "kind": "block",
        "block": kind,
        "channels": channels,
        "out": channels if kind in ("dwconv", "dense") else rng.choice(WIDTHS),
        "kernel": rng.choice((1, 3, 5, 7) if kind == "conv" else (3, 5, 7)),
        "stride": rng.choice((1, 2)),
        "expand": rng.choice((3, 4, 6)) if kind == "inverted" else 1,
        "size": rng.choice(BLOCK_RESOLUTIONS),
        "batch": batch,
    }
    if kind in ("basic", "dense"):
        spec["kernel"] = 3
    if kind == "dense":
        spec["stride"] = 1
        spec["out"] = rng.choice((8, 16, 32))  # growth
    return spec


def _network(rng: random.Random, batch: int, with_yolo: bool) -> dict:
    from tango_ci.models import ELASTIC_FAMILIES, FAMILIES, LEVELS, get_elastic_family

    draw = rng.random()
    if with_yolo and draw < 0.2:
        return {
            "kind": "yolo",
            "family": rng.choice(YOLO_FAMILIES),
            "scale": rng.choice(YOLO_SCALES),
            "depth": rng.choice(MULTIPLIERS),
            "width": rng.choice(MULTIPLIERS),
            "size": rng.choice(YOLO_SIZES),
            "batch": batch,
        }
    size = rng.choice(IMAGE_SIZES)
    if draw < 0.45:
        return {
            "kind": "family",
            "family": rng.choice(sorted(FAMILIES)),
            "level": rng.choice(LEVELS[:LEVEL_CHOICES]),
            "size": size,
            "batch": batch,
        }
    family = rng.choice(sorted(ELASTIC_FAMILIES))
    resolutions = subnet_resolutions(size)
    config = get_elastic_family(family).space(size, resolutions).sample(rng)
    return {
        "kind": "subnet",
        "family": family,
        "config": config,
        "resolutions": list(resolutions),
        "size": size,
        "batch": batch,
    }


def subnet_resolutions(size: int) -> tuple[int, ...]:
    """The elastic resolutions a sampled subnet of input ``size`` may run at."""
    return tuple(sorted({max(16, size * 3 // 4 // 8 * 8), size}))


def design(
    *,
    blocks: int,
    networks: int,
    batches: tuple[int, ...] = (1,),
    seed: int = 0,
    with_yolo: bool = True,
) -> list[ProfileSample]:
    """``blocks`` blocks and ``networks`` whole networks (a fifth of them YOLO scales unless
    ``with_yolo`` is off), without duplicates, interleaved so that a profile cut short by its
    time budget still has both."""
    rng = random.Random(seed)
    chosen: dict[str, ProfileSample] = {}
    drawn_blocks: list[ProfileSample] = []
    drawn_networks: list[ProfileSample] = []
    for count, draw, into in (
        (blocks, lambda b: _block(rng, b), drawn_blocks),
        (networks, lambda b: _network(rng, b, with_yolo), drawn_networks),
    ):
        attempts = 0
        while len(into) < count and attempts < count * 20:
            attempts += 1
            sample = ProfileSample(draw(rng.choice(batches)))
            if sample.id not in chosen:
                chosen[sample.id] = sample
                into.append(sample)
    ordered: list[ProfileSample] = []
    ratio = max(1, round(len(drawn_networks) / max(1, len(drawn_blocks))))
    while drawn_blocks or drawn_networks:
        ordered += drawn_networks[:ratio] + drawn_blocks[:1]
        del drawn_networks[:ratio], drawn_blocks[:1]
    return ordered
