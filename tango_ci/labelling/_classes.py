"""Staging a classification import: one class folder per label, each image once.

Images are told apart by content (sha256), not name: an image already in the data or in the
new-data folder (under any class, any name) is rejected saying where it is, since an import
adds images and never relabels one (a second class folder would train it as both); an image
given two classes in one export (two tasks for one file, or copies of it) is rejected in each
entry, as neither class can be trusted over the other.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

from tango_ci.data.files import sha256
from tango_ci.data.layout import image_name
from tango_ci.labelling._base import Entry, Staged
from tango_ci.labelling.sources import image_source
from tango_ci.rundir import display


class _Accepted:
    def __init__(self, index: int, entry: Entry, source: Path, label: str) -> None:
        self.index, self.entry, self.source, self.label = index, entry, source, label
        self.digest = ""


def stage_classes(
    entries: list[Entry],
    root: Path,
    staged: Path,
    data: Path,
    labels: list[str],
    held: Path | None,
) -> Staged:
    """Stage each acceptable entry's image as ``staged/<label>/<name>``."""
    found = Staged()
    accepted: list[_Accepted] = []
    names: set[tuple[str, str]] = set()
    for index, entry in enumerate(entries):
        got = image_source(entry, root)
        if isinstance(got, str):
            found.problems[index] = got
            continue
        source = got[0]
        problem = entry.label_problem or _name_problem(
            entry.label, source.name, labels, data, held, names
        )
        if problem is not None:
            found.problems[index] = problem
            continue
        label = str(entry.label)  # one of labels: checked above
        names.add((label, source.name))
        accepted.append(_Accepted(index, entry, source, label))
    for item in accepted:
        item.digest = sha256(item.source)
    folders = [("data", data)] + ([(f"new data ({display(held)})", held)] if held else [])
    present = _contents(folders, {item.source.stat().st_size for item in accepted})
    fresh = []
    for item in accepted:
        if item.digest in present:
            found.problems[item.index] = _already(present[item.digest], item.label)
        else:
            fresh.append(item)
    for item in _one_class_each(fresh, found):
        (staged / item.label).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item.source, staged / item.label / item.source.name)
    return found


def _name_problem(
    label: str | None,
    name: str,
    labels: list[str],
    data: Path,
    held: Path | None,
    names: set[tuple[str, str]],
) -> str | None:
    if label is None:
        return "has no class (no choice, or no tag)"
    if label not in labels:
        return f"label '{str(label)[:40]}' is not one of {', '.join(labels)}"
    if (data / label / name).exists():
        return f"{label}/{name} is already in the data"
    if held is not None and (held / label / name).exists():
        return f"{label}/{name} is already in the new data ({display(held)})"
    if (label, name) in names:
        return f"{label}/{name} comes twice in this import"
    return None


def _one_class_each(accepted: list[_Accepted], found: Staged) -> list[_Accepted]:
    """The first entry of each image, unless the export gives the image two classes: then
    none of its entries."""
    groups: dict[str, list[_Accepted]] = defaultdict(list)
    for item in accepted:
        groups[item.digest].append(item)
    kept = []
    for group in groups.values():
        classes = sorted({item.label for item in group})
        if len(classes) > 1:
            for item in group:
                others = ", ".join(o.entry.tag for o in group if o is not item)[:200]
                found.problems[item.index] = (
                    f"the same image is labelled {' and '.join(classes)} in this export "
                    f"(also {others}); neither is imported"
                )
            continue
        kept.append(group[0])
        for item in group[1:]:
            found.problems[item.index] = (
                f"the same image comes twice in this import (also {group[0].entry.tag})"
            )
    return sorted(kept, key=lambda item: item.index)


def _contents(
    folders: list[tuple[str, Path]], sizes: set[int]
) -> dict[str, tuple[str, Path, Path]]:
    """sha256 -> (what the folder is, the folder, the image's path in it) of the images in
    ``folders``; only files of one of ``sizes`` bytes are read (others cannot match)."""
    present: dict[str, tuple[str, Path, Path]] = {}
    for what, folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if any(part.startswith(".") for part in relative.parts) or not image_name(path):
                continue
            try:
                if not path.is_symlink() and path.is_file() and path.stat().st_size in sizes:
                    present.setdefault(sha256(path), (what, folder, relative))
            except OSError:
                continue
    return present


def _already(where: tuple[str, Path, Path], label: str) -> str:
    what, folder, relative = where
    shown = relative.as_posix()
    if relative.parts[0] == label:
        return f"the image is already in the {what} as {shown}"
    return (
        f"the image is already in the {what} as {shown}; an import does not relabel: to make "
        f"it {label}, move {display(folder / relative)} into {display(folder / label)}/"
    )
