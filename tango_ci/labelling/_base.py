"""What a labelling tool's export becomes before it is imported: one :class:`Entry` per task or
image, with its :class:`Box` es, and the base every export format derives from."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Box:
    """A rectangle as the tool wrote it: its top-left corner ``(x, y)`` and size, in percent of
    the image (Label Studio) or pixels (CVAT), turned by ``rotation`` degrees clockwise about
    its top-left corner (``pivot`` "corner") or its centre ("centre")."""

    labels: tuple[str, ...]
    unit: str  # "percent" or "pixels"
    x: float
    y: float
    width: float
    height: float
    rotation: float = 0.0
    pivot: str = "corner"


@dataclass
class Entry:
    """One task (Label Studio) or image (CVAT) of an export.

    ``candidates`` are the names, relative to the export's folder, its image may have there,
    in the order they are tried; ``image`` is the name as the export wrote it (for messages).
    ``problem`` makes the whole entry unusable; ``box_problem`` only a detection import
    (a polygon, a rectangle without a label), as a class import reads no boxes.
    """

    shown: str  # the export file, as messages name it
    tag: str  # the entry in it: "task 3", "image 3 (a.png)"
    image: str = ""
    candidates: list[str] = field(default_factory=list)
    label: str | None = None
    boxes: list[Box] = field(default_factory=list)
    problem: str | None = None
    box_problem: str | None = None
    label_problem: str | None = None  # makes it unusable to a classification import only
    size: tuple[int, int] | None = None  # (width, height) the export gives, if any

    @property
    def where(self) -> str:
        return f"{self.shown}: {self.tag}"


@dataclass
class Staged:
    """What staging an export's entries found: the reason each rejected entry (by its index)
    was rejected, and how many rotated boxes were imported as upright ones."""

    problems: dict[int, str] = field(default_factory=dict)
    rotated: int = 0


class BaseExportFormat(abc.ABC):
    """A labelling tool's export file: ``read`` turns it into entries, or raises
    :class:`~tango_ci.exceptions.TangoError` when the file as a whole cannot be read."""

    name: str = ""
    suffixes: tuple[str, ...] = ()

    @abc.abstractmethod
    def read(self, path: Path, shown: str) -> list[Entry]:
        """The entries of ``path`` (``shown``: how messages name the file)."""


def shape_problem(shapes: list[str]) -> str:
    """The reason a detection entry with shapes other than rectangles is rejected."""
    kinds = sorted(set(shapes))
    return f"has {' and '.join(kinds)}; only rectangles are imported as boxes"


def labels_problem(labels: tuple[str, ...]) -> str | None:
    """Why a rectangle's labels are not one label, or None."""
    if not labels:
        return "has a rectangle with no label"
    if len(labels) > 1:
        shown = ", ".join(label[:40] for label in labels[:5])
        return f"has a rectangle with {len(labels)} labels ({shown}); a box takes one"
    return None
