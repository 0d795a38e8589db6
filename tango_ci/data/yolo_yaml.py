"""A YOLO dataset's ``data.yaml``, read with bounds: it comes with the data, from anyone.

The file is size-limited, aliases are refused (a data.yaml never needs them, and a few
hundred bytes of nested aliases expand to gigabytes) and so is nesting deeper than
:data:`MAX_DEPTH` (PyYAML's scanner slows down with every open bracket: a few hundred kilobytes of
``[`` took minutes), all while reading PyYAML's event stream, which stops at the first of them.
A key written twice is refused rather than silently the last one. Fields are checked for their
types, class names for their length and number, ``nc`` against ``names`` (as ultralytics does),
and values echoed in messages are cut short.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tango_ci.data.files import FileRefused, decode_text, read_bytes, undecodable_line
from tango_ci.spec.problems import Position, Problem

MAX_YAML_BYTES = 1024 * 1024
MAX_EVENTS = 100_000
MAX_DEPTH = 40  # as project.yaml (tango_ci/spec/_yaml.py)
MAX_CLASSES = 10_000  # LVIS has 1203; every name is printed and kept with the model
MAX_NAME_CHARS = 200
MAX_SPLIT_ENTRIES = 100  # folders or list files of one split
MAX_KEYPOINTS = 1000
SPLIT_FIELDS = ("train", "val", "test")


@dataclass(frozen=True)
class DataYaml:
    """data.yaml's checked fields: the split paths (each a folder, a list file, or several;
    ``test`` only when given), the names, and ``kpt_shape`` (pose labels: keypoints and values
    per keypoint) when given."""

    path: str
    splits: dict[str, tuple[str, ...]]
    names: tuple[str, ...]
    positions: dict[str, Position] = field(default_factory=dict)
    keypoints: tuple[int, int] | None = None
    warnings: tuple[str, ...] = ()

    def where(self, key: str) -> Position:
        """Where ``key``'s value is written (1:1 when unknown)."""
        return self.positions.get(key, Position(1, 1))


def quoted(value: Any, limit: int = 100) -> str:
    """A value for a message, quoted and cut so a huge one never floods the line."""
    text = str(value)
    return f"'{text}'" if len(text) <= limit else f"'{text[: limit - 3]}...'"


def load_data_yaml(path: Path, display: str) -> tuple[DataYaml | None, list[Problem]]:
    """data.yaml's fields, or the problems that stop it being read."""

    def problem(position: Position, key: str, message: str) -> list[Problem]:
        return [Problem(display, position.line, position.col, key, message)]

    try:
        text = decode_text(read_bytes(path, MAX_YAML_BYTES))
    except FileRefused as exc:
        return None, [Problem(display, 0, 0, "", f"refused: {exc.message}")]
    except UnicodeDecodeError as exc:
        return None, problem(Position(*undecodable_line(exc)), "", "not UTF-8 text")
    try:
        refusal = _refusal(text)
        if refusal is not None:
            return None, problem(*refusal)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        duplicate = _duplicate(node) if node is not None else None
        if duplicate is not None:
            return None, problem(*duplicate)
        content = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
        reason = exc.problem or exc.context or "malformed"
        return None, problem(where, "", f"invalid YAML: {reason}")
    except (yaml.YAMLError, RecursionError, ValueError, TypeError, OverflowError) as exc:
        # a date or number PyYAML parses and cannot build (2024-13-45, 0x_) is a ValueError
        return None, problem(Position(1, 1), "", f"invalid YAML: {type(exc).__name__}")
    if not isinstance(content, dict) or not isinstance(node, yaml.MappingNode):
        return None, problem(Position(1, 1), "", "data.yaml must be a mapping")
    positions = {
        str(key.value): _start(value)
        for key, value in node.value
        if isinstance(key, yaml.ScalarNode)
    }
    names_node = next((v for k, v in node.value if k.value == "names"), None)
    return _fields(content, positions, _item_positions(names_node), display)


def _start(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _item_positions(node: yaml.Node | None) -> dict[int, Position]:
    """Where each class's name is written, by class: items of a list, values of a mapping."""
    if isinstance(node, yaml.SequenceNode):
        return {index: _start(item) for index, item in enumerate(node.value)}
    if isinstance(node, yaml.MappingNode):
        return {
            int(key.value): _start(value)
            for key, value in node.value
            if isinstance(key, yaml.ScalarNode) and key.value.isascii() and key.value.isdigit()
        }
    return {}


def _refusal(text: str) -> tuple[Position, str, str] | None:
    """The first alias, the point where the document nests too deep or has too many parts;
    None if fine. Events come one at a time, so a refusal costs only what precedes it."""
    depth = 0
    for count, event in enumerate(yaml.parse(text, Loader=yaml.SafeLoader)):
        mark = event.start_mark
        where = Position(mark.line + 1, mark.column + 1)
        if isinstance(event, yaml.AliasEvent):
            return where, "", "YAML aliases (*name) are not supported in data.yaml; write it out"
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return where, "", f"nested deeper than {MAX_DEPTH} levels"
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if count > MAX_EVENTS:
            return where, "", f"more than {MAX_EVENTS} YAML values; refusing to read it"
    return None


def _duplicate(node: yaml.Node) -> tuple[Position, str, str] | None:
    """The second writing of the first key written twice in any mapping; None if none.
    (yaml.safe_load keeps the last one silently.) The tree is small: :func:`_refusal` ran."""
    if isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        seen: set[tuple[str, str]] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode):
                if (key.tag, key.value) in seen:
                    mark = key.start_mark
                    where = Position(mark.line + 1, mark.column + 1)
                    return where, "", f"key {quoted(key.value, 60)} is written twice"
                seen.add((key.tag, key.value))
        children = [part for pair in node.value for part in pair]
    else:
        return None
    for child in children:
        found = _duplicate(child)
        if found is not None:
            return found
    return None


def _fields(
    content: dict, positions: dict[str, Position], name_positions: dict[int, Position], display: str
) -> tuple[DataYaml | None, list[Problem]]:
    def at(key: str, message: str) -> Problem:
        where = positions.get(key, Position(1, 1))
        return Problem(display, where.line, where.col, key, message)

    warnings = []
    if "val" not in content and "validation" in content:  # as ultralytics renames it
        content = {("val" if k == "validation" else k): v for k, v in content.items()}
        positions = positions | {"val": positions.get("validation", Position(1, 1))}
        warnings.append(f"{display}: 'validation:' read as 'val:', as ultralytics reads it")
    counted: list[Problem] = []
    if content.get("names") is None and "nc" in content:  # ultralytics names them class_0 ..
        count, nc_problem = _nc_count(content["nc"])
        counted = [at("nc", nc_problem)] if nc_problem else []
        content = content | {"names": [f"class_{i}" for i in range(count)]}
        if count:
            warnings.append(
                f"{display}: no names, so the {count} classes are named class_0 .. "
                f"class_{count - 1}, as ultralytics names them; add names: for readable reports"
            )
    problems = [
        Problem(display, 1, 1, "", f"missing required field '{key}'")
        for key in ("train", "val", "names")
        if key not in content
    ] + counted
    if problems:
        return None, problems
    root = content.get("path")
    if root is None:
        root = "."
    if not isinstance(root, str):
        problems.append(at("path", f"must be a folder (text), got {_kind(root)}"))
    splits = {}
    for key in SPLIT_FIELDS:
        value = content.get(key)
        if key == "test" and value in (None, "", []):
            continue
        entries = value if isinstance(value, list) else [value]
        if len(entries) > MAX_SPLIT_ENTRIES:
            problems.append(at(key, f"{len(entries)} entries, more than {MAX_SPLIT_ENTRIES}"))
        elif not entries or not all(isinstance(e, str) and e for e in entries):
            wrong = next((e for e in entries if not isinstance(e, str) or not e), value)
            problems.append(
                at(key, f"must be a folder or a list file (or a list of them), got {_kind(wrong)}")
            )
        else:
            splits[key] = tuple(entries)
    keypoints = None
    if content.get("kpt_shape") is not None:
        keypoints, shape_problem = _keypoints(content["kpt_shape"])
        if shape_problem:
            problems.append(at("kpt_shape", shape_problem))
    names, problem = _names(content["names"])
    if problem:
        index, message = problem
        where = positions.get("names", Position(1, 1))
        if index is not None:
            where = name_positions.get(index, where)
        problems.append(Problem(display, where.line, where.col, "names", message))
    elif "nc" in content:
        mismatch = _nc_problem(content["nc"], len(names))
        if mismatch:
            problems.append(at("nc", mismatch))
    if problems:
        return None, problems
    return DataYaml(str(root), splits, names, positions, keypoints, tuple(warnings)), []


def _keypoints(raw: Any) -> tuple[tuple[int, int] | None, str | None]:
    """``kpt_shape: [keypoints, values per keypoint]`` (2: x y, 3: x y visibility)."""
    if (
        isinstance(raw, list)
        and len(raw) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in raw)
        and 1 <= raw[0] <= MAX_KEYPOINTS
        and raw[1] in (2, 3)
    ):
        return (raw[0], raw[1]), None
    return None, (
        f"must be [keypoints, values per keypoint] (1..{MAX_KEYPOINTS}, and 2 or 3), "
        f"got {quoted(raw, 60)}"
    )


def _names(raw: Any) -> tuple[tuple[str, ...], tuple[int | None, str] | None]:
    """Class names from a list, or a mapping 0: name, 1: name, ...; or the class at fault
    (None: the whole field) and why not."""
    if isinstance(raw, dict) and all(_index(k) is not None for k in raw):
        indexed = {_index(k): v for k, v in raw.items()}  # '0': name, as ultralytics reads it
        if len(indexed) < len(raw):
            return (), (None, "a class index is written twice (as 0 and as '0')")
        raw = indexed
    if isinstance(raw, dict) and all(isinstance(k, int) for k in raw):
        if sorted(raw) != list(range(len(raw))):
            return (), (None, "mapping keys must be 0, 1, 2, ... without gaps")
        raw = [raw[i] for i in range(len(raw))]
    if not isinstance(raw, list) or not raw:
        return (), (
            None,
            "must be a list of class names, or a mapping 0: name, 1: name, ... without gaps",
        )
    if len(raw) > MAX_CLASSES:
        return (), (None, f"{len(raw)} classes, more than the {MAX_CLASSES} allowed")
    for index, name in enumerate(raw):
        # names like 0, 1, 2 (digits) are fine; yes/no read as booleans are not meant as names
        if isinstance(name, bool) or not isinstance(name, str | int) or str(name) == "":
            return (), (index, f"class {index} must be a name (text), got {_kind(name)}; quote it")
        if len(str(name)) > MAX_NAME_CHARS:
            return (), (
                index,
                f"class {index}'s name has {len(str(name))} characters, more than the "
                f"{MAX_NAME_CHARS} allowed",
            )
    names = tuple(str(name) for name in raw)
    first: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in first:
            return (), (
                None,
                f"{quoted(name, 60)} is named twice (classes {first[name]} and {index})",
            )
        first[name] = index
    return names, None


def _index(key: Any) -> int | None:
    """A class index written as a mapping key: 0, or '0' quoted."""
    if isinstance(key, int) and not isinstance(key, bool):
        return key
    if isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 6:
        return int(key)
    return None


def _nc_count(nc: Any) -> tuple[int, str | None]:
    """The number of classes ``nc`` gives when there are no names, or why it gives none."""
    problem = _nc_problem(nc, None)
    if problem:
        return 0, problem
    count = int(float(nc))
    if not 1 <= count <= MAX_CLASSES:
        return 0, f"must be 1 to {MAX_CLASSES} classes, got {count}"
    return count, None


def _nc_problem(nc: Any, count: int | None) -> str | None:
    """Why ``nc`` disagrees with the names (ultralytics refuses the dataset then); None if not.
    A whole number written as text or a float (``'3'``, ``3.0``) is one, as for ultralytics."""
    try:
        number = float(nc) if not isinstance(nc, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not math.isfinite(number) or number != int(number):
        shown = quoted(nc, 60) if isinstance(nc, str) else _kind(nc)
        return f"must be a whole number (the number of classes), got {shown}"
    if count is not None and int(number) != count:
        return f"says {int(number)} classes but names has {count}"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool | int | float):
        return f"the {type(value).__name__} {quoted(value, 60)}"
    kinds: dict[type, str] = {dict: "a mapping", list: "a list"}
    return kinds.get(type(value), type(value).__name__)
