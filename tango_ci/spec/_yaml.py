"""Load YAML into plain Python values while remembering where each value came from.

PyYAML composes the document into nodes (which carry line and column); we construct the values
ourselves so that duplicate keys, unsupported tags and documents that expand without bound (the
"billion laughs", or one large string repeated through aliases) are refused with a position
instead of a traceback or an exhausted machine. The budgets count values and text *after* alias
expansion, because that is what validation, error messages and the pipeline would otherwise
build. Numbers must be finite: NaN compares false with every bound a schema sets.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tango_ci.spec.problems import Position, Problem

MAX_BYTES = 1024 * 1024
MAX_VALUES = 20_000
MAX_EXPANDED_BYTES = 4 * MAX_BYTES
MAX_DEPTH = 40

Path_ = tuple[str | int, ...]
_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


@dataclass
class LocatedDocument:
    """A YAML document as plain values plus the position of every value and mapping key."""

    data: Any
    values: dict[Path_, Position] = field(default_factory=dict)
    keys: dict[Path_, Position] = field(default_factory=dict)

    def position(self, path: Path_, *, prefer_key: bool = True) -> Position:
        """Where ``path`` is written; falls back to the nearest enclosing value."""
        path = tuple(path)
        while True:
            if prefer_key and path in self.keys:
                return self.keys[path]
            if path in self.values:
                return self.values[path]
            if not path:
                return Position(1, 1)
            path = path[:-1]


class _Refused(Exception):
    def __init__(self, mark: yaml.Mark | None, message: str) -> None:
        super().__init__(message)
        self.position = _position(mark)
        self.message = message


def _position(mark: yaml.Mark | None) -> Position:
    if mark is None:
        return Position(1, 1)
    return Position(mark.line + 1, mark.column + 1)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's numbers: ``1e-3`` is a float (YAML 1.1 wants
    ``1.0e-3`` and read ``1e-3`` as text), and ``1:30`` is text (YAML 1.1 read base 60: 90)."""


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    # no leading zero: PyYAML's constructor would read 010 as octal 8 (YAML 1.2 says 10);
    # as text it is refused where a number goes, never misread
    _INT,
    re.compile(r"^[-+]?(?:0|[1-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


class _Builder:
    def __init__(self) -> None:
        self.doc = LocatedDocument(data=None)
        self.count = 0
        self.text_bytes = 0
        self._scalars = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: Path_, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise _Refused(
                node.start_mark,
                f"document expands to more than {MAX_VALUES} values "
                "(aliases nested too deep?); refusing to load it",
            )
        if depth > MAX_DEPTH:
            raise _Refused(node.start_mark, f"nesting deeper than {MAX_DEPTH} levels")
        self.doc.values.setdefault(path, _position(node.start_mark))
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _COLLECTION_TAGS:
            raise _Refused(node.start_mark, f"unsupported YAML tag {_short(node.tag)}")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: Path_, depth: int) -> dict:
        result: dict[str, Any] = {}
        first_seen: dict[str, Position] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(
                    key_node.start_mark, "merge keys ('<<') are not supported; write the fields out"
                )
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused(key_node.start_mark, "mapping keys must be plain words")
            key = str(key_node.value)
            self.text_bytes += len(key)
            key_position = _position(key_node.start_mark)
            if key in first_seen:
                raise _Refused(
                    key_node.start_mark,
                    f"duplicate key {_short(key)} (first set on line {first_seen[key].line})",
                )
            first_seen[key] = key_position
            self.doc.keys[path + (key,)] = key_position
            result[key] = self.build(value_node, path + (key,), depth + 1)
        return result

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        self.text_bytes += len(node.value)
        if self.text_bytes > MAX_EXPANDED_BYTES:
            raise _Refused(
                node.start_mark,
                f"document expands to more than "
                f"{MAX_EXPANDED_BYTES} bytes of text (an alias "
                "repeating a large value?); refusing to load it",
            )
        constructor = self._scalars.yaml_constructors.get(node.tag)
        if constructor is None:
            raise _Refused(node.start_mark, f"unsupported YAML tag {_short(node.tag)}")
        try:
            value = constructor(self._scalars, node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            raise _Refused(
                node.start_mark, f"invalid value {_short(node.value)}: {_short(str(exc))}"
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise _Refused(node.start_mark, f"{_short(node.value)} is not a finite number")
        return value


def _short(text: str, limit: int = 60) -> str:
    """A value quoted for a message, cut so a huge value never floods the one error line."""
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_located(path: Path, display: str) -> LocatedDocument:
    """Read ``path`` as one YAML document; raise :class:`YamlProblem` for anything malformed."""
    if path.is_symlink():
        raise YamlProblem(
            Problem(
                display,
                0,
                0,
                "",
                "is a symbolic link; spec files must be regular files in the repository",
            )
        )
    if not path.exists():
        raise YamlProblem(Problem(display, 0, 0, "", "file not found"))
    if path.is_dir():
        raise YamlProblem(Problem(display, 0, 0, "", "is a directory, expected a YAML file"))
    if not path.is_file():
        raise YamlProblem(Problem(display, 0, 0, "", "is not a regular file"))
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise YamlProblem(
            Problem(display, 1, 1, "", f"file is {size} bytes, larger than the {MAX_BYTES} allowed")
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlProblem(
            Problem(display, line, col, "", f"not UTF-8 text (byte 0x{raw[exc.start]:02x})")
        ) from None
    if not text.strip() or all(
        not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()
    ):
        raise YamlProblem(Problem(display, 1, 1, "", "file is empty"))
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        position = _position(exc.problem_mark or exc.context_mark)
        reason = exc.problem or exc.context or "malformed"
        raise YamlProblem(
            Problem(display, position.line, position.col, "", f"invalid YAML: {reason}")
        ) from None
    except yaml.YAMLError as exc:  # unmarked errors are rare; still no traceback
        raise YamlProblem(Problem(display, 1, 1, "", f"invalid YAML: {exc}")) from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise YamlProblem(
            Problem(display, 1, 1, "", f"nesting deeper than {MAX_DEPTH} levels")
        ) from None
    if len(nodes) != 1:
        position = _position(nodes[1].start_mark) if len(nodes) > 1 else Position(1, 1)
        raise YamlProblem(
            Problem(
                display,
                position.line,
                position.col,
                "",
                "expected one YAML document, found several",
            )
        )
    builder = _Builder()
    try:
        data = builder.build(nodes[0], (), 0)
    except _Refused as exc:
        raise YamlProblem(
            Problem(display, exc.position.line, exc.position.col, "", exc.message)
        ) from None
    except RecursionError:
        raise YamlProblem(
            Problem(display, 1, 1, "", f"nesting deeper than {MAX_DEPTH} levels")
        ) from None
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"the value {_short(str(data))}"
        raise YamlProblem(Problem(display, 1, 1, "", f"top level must be a mapping, got {kind}"))
    builder.doc.data = data
    return builder.doc


class YamlProblem(Exception):
    """Carries the single problem that stopped loading; callers collect it."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.format())
        self.problem = problem
