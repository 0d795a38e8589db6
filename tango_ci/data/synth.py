"""Synthetic shape images for examples and tests: nothing is downloaded, the seed decides all."""

from __future__ import annotations

import fcntl
import json
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tango_ci.exceptions import TangoError
from tango_ci.plugins import TASKS, get_task
from tango_ci.rundir import display

SHAPES = ("circle", "square", "triangle")
STAMP = ".tango-synth.json"


@dataclass(frozen=True)
class SynthRequest:
    out: Path
    task: str = TASKS.builtin_names()[0]
    images_per_class: int = 200
    size: int = 64
    seed: int = 0
    classes: tuple[str, ...] = SHAPES

    def stamp(self) -> dict:
        data = asdict(self)
        data.pop("out")
        data["classes"] = list(self.classes)
        data["generator"] = 1  # bump when the images a seed gives change
        return data


class SynthOutputExists(TangoError):
    _template = (
        "{out} already holds other data; pass --force to replace it, or choose another folder"
    )


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    base = rng.uniform(0, 255, size=3)
    gradient = np.linspace(-30, 30, size)[None, :, None] * rng.uniform(-1, 1, size=3)
    noise = rng.normal(0, rng.uniform(4, 18), size=(size, size, 3))
    pixels = np.clip(base + gradient + noise, 0, 255).astype(np.uint8)
    return pixels, base


def _colour_far_from(rng: np.random.Generator, background: np.ndarray) -> tuple[int, ...]:
    for _ in range(50):
        colour = rng.uniform(0, 255, size=3)
        if np.abs(colour - background).sum() > 180:
            break
    return tuple(int(c) for c in colour)


def polygon(shape: str, cx: float, cy: float, radius: float, angle: float) -> list[tuple]:
    corners = {"square": 4, "triangle": 3}[shape]
    return [
        (
            cx + radius * math.cos(angle + 2 * math.pi * k / corners),
            cy + radius * math.sin(angle + 2 * math.pi * k / corners),
        )
        for k in range(corners)
    ]


def draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    cx: float,
    cy: float,
    radius: float,
    angle: float,
    colour: tuple[int, ...],
) -> None:
    if shape == "circle":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)
    else:
        draw.polygon(polygon(shape, cx, cy, radius, angle), fill=colour)


def shape_image(rng: np.random.Generator, shape: str, size: int) -> Image.Image:
    """One image with one shape of random size, colour, position and rotation."""
    pixels, background = _background(rng, size)
    image = Image.fromarray(pixels)
    radius = rng.uniform(0.22, 0.42) * size
    cx, cy = rng.uniform(radius, size - radius, size=2)
    draw_shape(
        ImageDraw.Draw(image),
        shape,
        cx,
        cy,
        radius,
        rng.uniform(0, 2 * math.pi),
        _colour_far_from(rng, background),
    )
    return image


def synthesize(
    request: SynthRequest,
    *,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write an ImageFolder of shapes to ``request.out``; returns a summary.

    A folder already made with the same request is left as it is; a folder holding anything
    else is refused unless ``force``.
    """
    task = get_task(request.task)  # an unknown task is refused with the valid names
    unknown = sorted(set(request.classes) - set(SHAPES))
    if unknown:
        raise TangoError(
            f"unknown shape class(es) {', '.join(unknown)}; choose from {', '.join(SHAPES)}"
        )
    out = Path(request.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # two runs may synthesise the same folder at once: one makes it, the other then finds it
    with open(out.with_name(f".{out.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stamp(out / STAMP) == request.stamp():
            return {
                "path": str(out),
                "created": False,
                "images": task.count_synthetic(out, request),
            }
        if out.exists() and any(out.iterdir()):
            if not force:
                raise SynthOutputExists(out=out)
            shutil.rmtree(out)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        try:
            task.synthesize(staging, request, progress)
            (staging / STAMP).write_text(json.dumps(request.stamp(), indent=2))
            if out.exists():
                out.rmdir()  # empty (checked above)
            staging.rename(out)  # appears whole or not at all
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return {"path": str(out), "created": True, "images": task.count_synthetic(out, request)}


def synthesize_project(
    spec, *, force: bool = False, progress: Callable[[int, int], None] | None = None
) -> dict:
    """Generate a project's data from its ``data.synth`` section into its ``data.path``."""
    synth = spec.data.synth
    if synth is None:
        where = display(spec.path) if spec.path else spec.name
        raise TangoError(f"{where}: data.synth is not set; this project's data is not synthetic")
    request = SynthRequest(
        out=spec.data.resolved,
        task=spec.task,
        images_per_class=synth.images_per_class,
        size=synth.size,
        seed=synth.seed,
    )
    return synthesize(request, force=force, progress=progress)


def _stamp(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


def write_shapes(
    staging: Path, request: SynthRequest, progress: Callable[[int, int], None] | None
) -> None:
    """An ImageFolder of coloured shapes, one class folder per shape."""
    rng = np.random.default_rng(request.seed)
    total = request.images_per_class * len(request.classes)
    done = 0
    for shape in request.classes:
        folder = staging / shape
        folder.mkdir(parents=True)
        for index in range(request.images_per_class):
            shape_image(rng, shape, request.size).save(folder / f"{shape}_{index:05d}.png")
            done += 1
            if progress:
                progress(done, total)
