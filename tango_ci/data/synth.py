"""Synthetic images for examples and tests: nothing is downloaded, the seed decides all.

Each generator kind (``data.synth.kind``) is a row of :data:`KINDS`: its classes, how it draws
one image of a class, and the data formats it can fill. ``shapes`` (three flat shapes, easy)
serves every task; ``glyphs`` (twelve shapes in clutter, see :mod:`.synth_glyphs`) only
ImageFolder classification.
"""

from __future__ import annotations

import fcntl
import filecmp
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


class SynthFolderNotOurs(TangoError):
    """A folder data.synth would replace holds data it cannot prove it made: left alone."""

    _template = (
        "data folder {out} exists and is not the one data.synth made ({reason}), so it is "
        "used as it is; to have data.synth make it again, move it away or run "
        "`tango data synth --force` (which deletes it)"
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
    replace_own: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write the request's synthetic dataset to ``request.out``; returns a summary.

    A folder already made with the same request is left as it is; a folder holding anything
    else is refused unless ``force``. With ``replace_own``, a folder made with another request
    is made again when its stamp and files show synth made it (:class:`SynthFolderNotOurs`
    otherwise). The new folder is made beside the old one and swapped in whole.
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
        found = read_stamp(out / STAMP)
        if found == request.stamp():
            return {
                "path": str(out),
                "created": False,
                "images": task.count_synthetic(out, request),
            }
        if out.exists() and any(out.iterdir()) and not force:
            if not replace_own:
                raise SynthOutputExists(out=out)
            reason = _not_made_by_synth(out, found)
            if reason is not None:
                raise SynthFolderNotOurs(out=display(out), reason=reason)
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


def _not_made_by_synth(out: Path, found: dict | None) -> str | None:
    """Why ``out`` may not be replaced, in words; None when its stamp is synth's and its files
    are, byte for byte, those that stamp's request makes (made again aside to compare)."""
    if found is None:
        return f"it has no {STAMP} stamp"
    if not _within_schema(found):  # a pushed stamp must not make the check synthesise 10^9
        return f"its {STAMP} stamp asks for more than a project file may"
    try:
        made = SynthRequest(
            out=out,
            task=found["task"],
            images_per_class=found["images_per_class"],
            size=found["size"],
            seed=found["seed"],
            classes=tuple(found["classes"]),
            kind=found.get("kind", DEFAULT_KIND),
        )
        readable = made.stamp() == found
    except (KeyError, TypeError, ValueError, TangoError):
        readable = False
    if not readable:
        return f"its {STAMP} stamp is not one this version of tango writes"
    check = Path(tempfile.mkdtemp(prefix=f".{out.name}.check-", dir=out.parent))
    try:
        get_task(made.task).synthesize(check, made, None)
        same = _same_files(check, out)
    finally:
        shutil.rmtree(check, ignore_errors=True)
    return None if same else "its files differ from those data.synth made"


def _within_schema(found: dict) -> bool:
    """Whether a stamp's settings are ones a project file may ask for (the schema's bounds)."""
    from tango_ci.spec._schema import load_schema

    limits = load_schema("project")["$defs"]["data"]["properties"]["synth"]["properties"]
    for key in ("images_per_class", "size", "seed"):
        value, bound = found.get(key), limits[key]
        if not isinstance(value, int) or isinstance(value, bool):
            return False
        if not bound["minimum"] <= value <= bound["maximum"]:
            return False
    kind, classes = found.get("kind", DEFAULT_KIND), found.get("classes")
    if kind not in limits["kind"]["enum"] or not isinstance(classes, list):
        return False
    return all(isinstance(c, str) for c in classes) and set(classes) <= set(
        synth_kind(kind).classes
    )


def _same_files(made: Path, out: Path) -> bool:
    """Whether ``out`` (but its stamp) holds the entries of ``made``, files byte for byte;
    names are compared first so that a large folder of other data is not read."""
    entries = _entries(made)
    if _entries(out, skip=STAMP) != entries:
        return False
    return all(
        not is_file or filecmp.cmp(made / name, out / name, shallow=False)
        for name, is_file in entries.items()
    )


def _entries(folder: Path, skip: str = "") -> dict[str, bool]:
    """Every entry under ``folder`` (links not followed) by relative path: is it a file."""
    entries = {}
    for path in folder.rglob("*"):
        name = path.relative_to(folder).as_posix()
        if name != skip:
            entries[name] = path.is_file() and not path.is_symlink()
    return entries


def synthesize_project(
    spec,
    *,
    force: bool = False,
    replace_own: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Generate a project's data from its ``data.synth`` section into its ``data.path``."""
    return synthesize(
        project_request(spec), force=force, replace_own=replace_own, progress=progress
    )


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


def read_stamp(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


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
