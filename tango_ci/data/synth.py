"""Synthetic images for examples and tests: nothing is downloaded, the seed decides all.

Each generator kind (``data.synth.kind``) is a row of :data:`KINDS`: its classes, how it draws
one image of a class, and the data formats it can fill. ``shapes`` (three flat shapes, easy)
serves every task; ``glyphs`` (twelve shapes in clutter, see :mod:`.synth_glyphs`) only
ImageFolder classification.
"""

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

from tango_ci.data.synth_glyphs import GLYPHS, glyph_image
from tango_ci.exceptions import TangoError, UnknownNameError, UnsupportedRequestError
from tango_ci.plugins import TASKS, get_task
from tango_ci.printable import printable
from tango_ci.rundir import display

SHAPES = ("circle", "square", "triangle")
STAMP = ".tango-synth.json"
DEFAULT_KIND = "shapes"


@dataclass(frozen=True)
class SynthRequest:
    out: Path
    task: str = TASKS.builtin_names()[0]
    images_per_class: int = 200
    size: int = 64
    seed: int = 0
    classes: tuple[str, ...] = ()  # empty: every class of the kind
    kind: str = DEFAULT_KIND

    def __post_init__(self) -> None:
        if not self.classes:
            object.__setattr__(self, "classes", synth_kind(self.kind).classes)

    def stamp(self) -> dict:
        data = asdict(self)
        data.pop("out")
        data["classes"] = list(self.classes)
        if self.kind == DEFAULT_KIND:
            data.pop("kind")  # so folders made before kinds existed still match
        data["generator"] = synth_kind(self.kind).generator
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
    """Write the request's synthetic dataset to ``request.out``; returns a summary.

    A folder already made with the same request is left as it is; a folder holding anything
    else is refused unless ``force``. The new folder is made beside the old one and swapped in
    whole.
    """
    task = get_task(request.task)  # an unknown task is refused with the valid names
    kind = synth_kind(request.kind)
    if not set(task.data_formats) & set(kind.formats):
        raise UnsupportedRequestError(
            backend=f"synth kind '{request.kind}'",
            request=f"make {request.task} data",
            reason=f"it writes only {', '.join(kind.formats)}; "
            f"kinds for {request.task}: {', '.join(kinds_for(task.data_formats))}",
        )
    unknown = sorted(set(request.classes) - set(kind.classes))
    if unknown:
        raise TangoError(
            f"unknown {request.kind} class(es) {', '.join(unknown)}; "
            f"choose from {', '.join(kind.classes)}"
        )
    out = Path(request.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # two runs may synthesise the same folder at once: one makes it, the other then finds it
    with open(out.with_name(f".{out.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if read_stamp(out / STAMP) == request.stamp():
            return {
                "path": str(out),
                "created": False,
                "images": task.count_synthetic(out, request),
            }
        if out.exists() and any(out.iterdir()) and not force:
            raise SynthOutputExists(out=out)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        try:
            task.synthesize(staging, request, progress)
            (staging / STAMP).write_text(json.dumps(request.stamp(), indent=2))
            _swap_in(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return {"path": str(out), "created": True, "images": task.count_synthetic(out, request)}


def _swap_in(staging: Path, out: Path) -> None:
    """Put ``staging`` at ``out``; an old ``out`` is moved aside first and then deleted, so
    ``out`` holds the old files or the new ones, never a mixture."""
    if not out.exists():
        staging.rename(out)  # appears whole or not at all
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    out.rename(old / out.name)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def synthesize_project(
    spec,
    *,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Generate a project's data from its ``data.synth`` section into its ``data.path``."""
    return synthesize(project_request(spec), force=force, progress=progress)


def project_request(spec) -> SynthRequest:
    """The request a project's ``data.synth`` section makes."""
    synth = spec.data.synth
    if synth is None:
        where = display(spec.path) if spec.path else spec.name
        raise TangoError(f"{where}: data.synth is not set; this project's data is not synthetic")
    return SynthRequest(
        out=spec.data.resolved,
        task=spec.task,
        images_per_class=synth.images_per_class,
        size=synth.size,
        seed=synth.seed,
        kind=synth.kind,
    )


#: a stamp is a few hundred bytes; a longer file is not one synth wrote
MAX_STAMP_BYTES = 16_384


def read_stamp(path: Path) -> dict | None:
    """The stamp at ``path`` (a file of the data folder, which may have been pushed: read as
    data), or None when there is none or it is not a JSON object of at most
    :data:`MAX_STAMP_BYTES`."""
    try:
        if path.is_symlink() or not path.is_file():
            return None
        with open(path, "rb") as handle:
            raw = handle.read(MAX_STAMP_BYTES + 1)
        found = json.loads(raw) if len(raw) <= MAX_STAMP_BYTES else None
    except (OSError, ValueError, RecursionError):
        return None
    return found if isinstance(found, dict) else None


def stamp_changes(found: dict, wanted: dict) -> str:
    """The settings ``found`` (a folder's stamp) has other than ``wanted``, as ``key old ->
    new`` (at most 3, values cut to 40 characters)."""
    keys = [k for k in wanted if found.get(k) != wanted[k]]
    keys += [k for k in found if k not in wanted]

    def shown(value: object) -> str:
        return printable(json.dumps(value))[:40]

    return ", ".join(
        f"{printable(str(k))[:40]} {shown(found.get(k))} -> {shown(wanted.get(k))}"
        for k in keys[:3]
    ) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def write_shapes(
    staging: Path, request: SynthRequest, progress: Callable[[int, int], None] | None
) -> None:
    """An ImageFolder of the request's kind (coloured shapes by default), one class folder
    per class."""
    draw = synth_kind(request.kind).draw
    rng = np.random.default_rng(request.seed)
    total = request.images_per_class * len(request.classes)
    done = 0
    for name in request.classes:
        folder = staging / name
        folder.mkdir(parents=True)
        for index in range(request.images_per_class):
            draw(rng, name, request.size).save(folder / f"{name}_{index:05d}.png")
            done += 1
            if progress:
                progress(done, total)


@dataclass(frozen=True)
class SynthKind:
    """A generator: its classes, how it draws one image of a class, what it can fill."""

    classes: tuple[str, ...]
    draw: Callable[[np.random.Generator, str, int], Image.Image]
    #: the data formats (of a task) it can write; a task reading none of them is refused
    formats: tuple[str, ...]
    #: in the stamp; bump when the images a seed gives change
    generator: int
    summary: str


KINDS: dict[str, SynthKind] = {
    "shapes": SynthKind(
        SHAPES,
        shape_image,
        ("imagefolder", "yolo"),
        generator=1,
        summary="circles, squares and triangles on noisy backgrounds",
    ),
    "glyphs": SynthKind(
        GLYPHS,
        glyph_image,
        ("imagefolder",),
        generator=1,
        summary=f"{len(GLYPHS)} shapes at random scale, rotation (up to 30 degrees) and style "
        "among distractors on textured backgrounds, blurred and JPEG-compressed (harder; "
        "classification only)",
    ),
}


def synth_kind(name: str) -> SynthKind:
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownNameError(kind="synth kind", name=name, valid=", ".join(KINDS)) from None


def kinds_for(data_formats: tuple[str, ...]) -> list[str]:
    """The kinds that can write one of ``data_formats``."""
    return [name for name, kind in KINDS.items() if set(kind.formats) & set(data_formats)]
