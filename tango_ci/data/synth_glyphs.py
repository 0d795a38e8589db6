"""Synthetic glyph images: twelve shapes that a small network at 32 px does not get all right,
for telling search strategies apart (``synth.kind: glyphs``).

Each image holds one glyph at a random scale, rotation (up to 30 degrees either way, so an
arrow still points somewhere in particular), aspect, position, colour and style (filled,
outlined, or filled with an outline of another colour) on a textured background, with up to
two smaller glyphs of other classes at its edge, often overlapping it, in front or behind,
then mild blur, pixel noise and a JPEG round trip. Shapes are drawn as masks at a few times the image
size and averaged down, so edges are anti-aliased at any size. Nothing is downloaded; the
generator passed in decides every pixel. :class:`GlyphLook` holds every knob.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

#: class names, in the order their folders are written
GLYPHS = (
    "circle",
    "triangle",
    "square",
    "pentagon",
    "hexagon",
    "star",
    "cross",
    "diamond",
    "arrow",
    "crescent",
    "heart",
    "chevron",
)

Points = list[tuple[float, float]]
Range = tuple[float, float]


@dataclass(frozen=True)
class GlyphLook:
    """How hard the images are: each range is drawn from uniformly per image (per glyph for
    colours and styles). Lengths are fractions of the image side, or of the glyph's radius
    for strokes and distractors. A change of the defaults changes every glyphs dataset, so
    it bumps the kind's generator version in :mod:`tango_ci.data.synth`.

    The defaults were set by training resnet ``s`` (10 epochs, 300 training images a class,
    32 px, lr 0.01): on plain images of ten of the glyphs it reached 99% upright, 95% turned
    up to 30 degrees and 64% turned freely, and outlined glyphs as often as filled ones took
    the last to 37%. With these defaults it reaches 70-71% (73-75% at lr 0.003, where
    resnet ``m`` reaches 79-89%).
    """

    radius: Range = (0.32, 0.46)
    aspect: Range = (0.85, 1.15)
    rotation: float = 30.0  # the glyph turns by up to this many degrees either way
    #: chances of a filled glyph, an outlined one, and a filled one with an outline
    styles: tuple[float, float, float] = (0.75, 0.1, 0.15)
    stroke: Range = (0.2, 0.3)
    #: how far the glyph's colour is at least from the background's (sum over RGB)
    contrast: Range = (160, 290)
    distractors: int = 2
    distractor_radius: Range = (0.07, 0.14)
    #: distance of a distractor's centre from the glyph's, in the glyph's radii
    distractor_reach: Range = (0.9, 1.4)
    stripes: float = 0.3  # chance of a striped background
    stripe_amplitude: Range = (3, 8)
    blotch_amplitude: Range = (5, 20)
    grain: Range = (2, 6)
    blur: Range = (0, 0.3)  # Gaussian radius in pixels at 32 px, in proportion at others
    jpeg_quality: tuple[int, int] = (65, 95)


LOOK = GlyphLook()


def _regular(corners: int, inner: float | None = None) -> np.ndarray:
    """A regular polygon (or, with ``inner``, a star) of circumradius 1, a corner at the top."""
    steps = corners * (2 if inner else 1)
    angles = -math.pi / 2 + 2 * math.pi * np.arange(steps) / steps
    radii = np.where(np.arange(steps) % 2 == 1, inner, 1.0) if inner else np.ones(steps)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _crescent() -> np.ndarray:
    """The unit disc less a disc of radius 0.8 whose centre is 0.45 to the right."""
    offset, inner = 0.45, 0.8
    x = (offset**2 + 1 - inner**2) / (2 * offset)  # where the two circles cross
    outer_start = math.atan2(math.sqrt(1 - x * x), x)
    inner_start = math.atan2(math.sqrt(1 - x * x), x - offset)
    outer = np.linspace(outer_start, 2 * math.pi - outer_start, 48)
    hollow = np.linspace(2 * math.pi - inner_start, inner_start, 32)
    return np.concatenate(
        [
            np.stack([np.cos(outer), np.sin(outer)], axis=1),
            np.stack([offset + inner * np.cos(hollow), inner * np.sin(hollow)], axis=1),
        ]
    )


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    return np.stack([x, -y], axis=1)  # image rows grow downwards


def _outlines() -> dict[str, np.ndarray]:
    arm = 0.3
    raw = {
        "circle": _regular(64),
        "triangle": _regular(3),
        "square": _regular(4),
        "pentagon": _regular(5),
        "hexagon": _regular(6),
        "star": _regular(5, inner=0.42),
        "cross": np.array(
            [(-arm, -1), (arm, -1), (arm, -arm), (1, -arm), (1, arm), (arm, arm)]
            + [(arm, 1), (-arm, 1), (-arm, arm), (-1, arm), (-1, -arm), (-arm, -arm)]
        ),
        "diamond": np.array([(0, -1), (0.55, 0), (0, 1), (-0.55, 0)]),
        "arrow": np.array(
            [(-1, -0.18), (0.15, -0.18), (0.15, -0.6), (1, 0), (0.15, 0.6), (0.15, 0.18)]
            + [(-1, 0.18)]
        ),
        "crescent": _crescent(),
        "heart": _heart(),
        "chevron": np.array(
            [(-0.9, -0.75), (0, 0.05), (0.9, -0.75), (0.9, -0.1), (0, 0.7), (-0.9, -0.1)]
        ),
    }
    outlines = {}
    for name, points in raw.items():
        points = np.asarray(points, dtype=np.float64)
        points = points - (points.min(axis=0) + points.max(axis=0)) / 2  # centre its box
        outlines[name] = points / np.linalg.norm(points, axis=1).max()  # reach radius 1
    return outlines


_OUTLINES = _outlines()


def _place(glyph: str, cx: float, cy: float, radius: float, angle: float, aspect: float) -> Points:
    points = _OUTLINES[glyph] * [aspect, 1.0]
    cos, sin = math.cos(angle), math.sin(angle)
    x = cx + radius * (points[:, 0] * cos - points[:, 1] * sin)
    y = cy + radius * (points[:, 0] * sin + points[:, 1] * cos)
    return list(zip(x.tolist(), y.tolist(), strict=True))


def _supersample(size: int) -> int:
    return 4 if size <= 128 else 2 if size <= 512 else 1


def _mask(points: Points, size: int, stroke: float = 0.0) -> np.ndarray:
    """Coverage (0..1) of the polygon, or of its outline ``stroke`` pixels wide."""
    factor = _supersample(size)
    canvas = Image.new("L", (size * factor, size * factor), 0)
    draw = ImageDraw.Draw(canvas)
    scaled = [(x * factor, y * factor) for x, y in points]
    if stroke > 0:
        draw.polygon(scaled, outline=255, width=max(1, round(stroke * factor)))
    else:
        draw.polygon(scaled, fill=255)
    small = canvas.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def glyph_mask(glyph: str, size: int, angle: float = 0.0) -> np.ndarray:
    """The filled glyph centred in a ``size`` square at radius 0.45 * size: its coverage."""
    return _mask(_place(glyph, size / 2, size / 2, 0.45 * size, angle, 1.0), size)


def _background(
    rng: np.random.Generator, size: int, look: GlyphLook
) -> tuple[np.ndarray, np.ndarray]:
    """A textured background: colour, gradient, blotches, maybe stripes, and grain."""
    base = rng.uniform(0, 255, size=3)
    ys, xs = np.mgrid[0:size, 0:size] / size
    direction = rng.uniform(0, 2 * math.pi)
    ramp = (xs * math.cos(direction) + ys * math.sin(direction))[..., None]
    pixels = base + (ramp - 0.5) * rng.uniform(-60, 60, size=3)
    cells = int(rng.integers(3, 9))
    blotches = rng.normal(0, 1, size=(cells, cells, 3))
    smooth = np.stack(
        [
            np.asarray(
                Image.fromarray(blotches[..., c].astype(np.float32)).resize(
                    (size, size), Image.Resampling.BICUBIC
                )
            )
            for c in range(3)
        ],
        axis=-1,
    )
    pixels = pixels + smooth * rng.uniform(*look.blotch_amplitude)
    if rng.random() < look.stripes:
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(3, 10) / 32  # a few pixels at 32 px, as many at any size
        phase = (xs * math.cos(angle) + ys * math.sin(angle)) / period * 2 * math.pi
        pixels = pixels + np.sin(phase)[..., None] * rng.uniform(*look.stripe_amplitude, size=3)
    return pixels, base


def _colour_apart(rng: np.random.Generator, background: np.ndarray, distance: float) -> np.ndarray:
    """A colour at least ``distance`` (sum over channels) from ``background``, if one turns
    up in a few draws; low contrast now and then is part of the difficulty."""
    colour = rng.uniform(0, 255, size=3)
    for _ in range(30):
        if np.abs(colour - background).sum() > distance:
            break
        colour = rng.uniform(0, 255, size=3)
    return colour


def _paint(pixels: np.ndarray, coverage: np.ndarray, colour: np.ndarray) -> None:
    alpha = coverage[..., None]
    pixels *= 1 - alpha
    pixels += alpha * colour


def _draw_glyph(
    rng: np.random.Generator,
    pixels: np.ndarray,
    background: np.ndarray,
    points: Points,
    radius: float,
    look: GlyphLook,
) -> None:
    """One glyph: filled, outlined, or filled with an outline of another colour."""
    size = pixels.shape[0]
    style = rng.choice(3, p=list(look.styles))
    colour = _colour_apart(rng, background, rng.uniform(*look.contrast))
    stroke = max(1.0, rng.uniform(*look.stroke) * radius)
    if style == 1:
        _paint(pixels, _mask(points, size, stroke), colour)
        return
    fill = _mask(points, size)
    shade = rng.normal(0, rng.uniform(0, 10), size=pixels.shape)  # a slightly uneven fill
    _paint(pixels, fill, colour + shade)
    if style == 2:
        _paint(pixels, _mask(points, size, stroke), _colour_apart(rng, colour, 150))


def glyph_image(
    rng: np.random.Generator, glyph: str, size: int, look: GlyphLook = LOOK
) -> Image.Image:
    """One image of ``glyph`` with up to ``look.distractors`` smaller glyphs of other classes
    beside it."""
    pixels, background = _background(rng, size, look)
    radius = rng.uniform(*look.radius) * size
    cx, cy = rng.uniform(0.75 * radius, size - 0.75 * radius, size=2)  # may touch the edge
    aspect = rng.uniform(*look.aspect)
    turn = math.radians(look.rotation)
    main = _place(glyph, cx, cy, radius, rng.uniform(-turn, turn), aspect)
    others = [g for g in GLYPHS if g != glyph]
    distractors = []
    for _ in range(int(rng.integers(0, look.distractors + 1))):
        other = others[int(rng.integers(len(others)))]
        small = rng.uniform(*look.distractor_radius) * size
        bearing, reach = rng.uniform(0, 2 * math.pi), rng.uniform(*look.distractor_reach) * radius
        points = _place(
            other,
            cx + reach * math.cos(bearing),
            cy + reach * math.sin(bearing),
            small,
            rng.uniform(0, 2 * math.pi),
            rng.uniform(*look.aspect),
        )
        distractors.append((points, small, bool(rng.random() < 0.5)))
    for points, small, in_front in distractors:
        if not in_front:
            _draw_glyph(rng, pixels, background, points, small, look)
    _draw_glyph(rng, pixels, background, main, radius, look)
    for points, small, in_front in distractors:
        if in_front:
            _draw_glyph(rng, pixels, background, points, small, look)
    pixels += rng.normal(0, rng.uniform(*look.grain), size=pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(*look.blur) * size / 32))
    buffer = io.BytesIO()
    low, high = look.jpeg_quality
    image.save(buffer, format="JPEG", quality=int(rng.integers(low, high + 1)))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


__all__ = ["GLYPHS", "LOOK", "GlyphLook", "glyph_image", "glyph_mask"]
