"""JSON Schema validation with messages that name the field and point at its line."""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Iterator
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator

from tango_ci.contracts import schema_file
from tango_ci.spec._yaml import LocatedDocument
from tango_ci.spec.enums import registry_enums, with_registry_enums
from tango_ci.spec.problems import Problem, format_field


def schema_path(kind: str) -> Path:
    """The JSON Schema file of ``kind`` (``project`` or ``runner``)."""
    return schema_file(f"{kind}.schema.json")


@cache
def load_schema(kind: str) -> dict:
    return json.loads(schema_path(kind).read_text(encoding="utf-8"))


def _is_integer(checker: Any, instance: Any) -> bool:
    """JSON Schema calls 16.0 an integer; the pipeline would then get a float. We do not."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _full_match(validator: Any, pattern: str, instance: Any, schema: dict) -> Iterator:
    """``pattern`` with a final ``$`` that really ends the text.

    Python's ``$`` also matches before a trailing newline, so ``name: "x\\n"`` would pass
    ``^[a-z]+$`` and become a folder name with a newline in it.
    """
    if not validator.is_type(instance, "string"):
        return
    strict = (
        pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern
    )
    if re.search(strict, instance) is None:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_StrictValidator = jsonschema.validators.extend(
    Draft202012Validator,
    validators={"pattern": _full_match},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


@lru_cache(maxsize=16)
def _validator(kind: str, enums: str) -> Any:
    return _StrictValidator(with_registry_enums(kind, load_schema(kind)))


def validate(kind: str, doc: LocatedDocument, display: str) -> list[Problem]:
    problems: list[Problem] = []
    enums = repr(sorted(registry_enums(kind).items(), key=repr))  # plug-ins change them
    for error in _validator(kind, enums).iter_errors(doc.data):
        problems.extend(_to_problems(error, doc, display))
    return sorted(set(problems))


def _to_problems(
    error: jsonschema.ValidationError, doc: LocatedDocument, display: str
) -> Iterator[Problem]:
    path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}

    def at(field_path: tuple, message: str, prefer_key: bool = True) -> Problem:
        position = doc.position(field_path, prefer_key=prefer_key)
        return Problem(display, position.line, position.col, format_field(field_path), message)

    kind = error.validator
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        for key in sorted(set(error.instance) - set(allowed)):
            yield at(path + (key,), f"unknown field '{key}'{_did_you_mean(key, allowed)}")
    elif kind == "required":
        missing = error.message.split("'")[1]
        present = [k for k in error.instance if k not in schema.get("properties", {})]
        if not _did_you_mean(missing, present):  # else the unknown key's "did you mean" says it
            yield at(path, f"missing required field '{missing}'")
    elif kind == "enum":
        options = [str(o) for o in error.validator_value]
        yield at(
            path,
            f"{_show(error.instance)} is not one of: {', '.join(options)}"
            f"{_did_you_mean(str(error.instance), options)}",
            prefer_key=False,
        )
    elif kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        yield at(
            path,
            f"expected {expected}, got {_type_name(error.instance)} {_show(error.instance)}",
            prefer_key=False,
        )
    elif kind == "pattern":
        hint = schema.get("x-hint", f"a value matching {error.validator_value}")
        yield at(path, f"{_show(error.instance)} is not {hint}", prefer_key=False)
    elif kind in _BOUNDS:
        yield at(
            path,
            f"must be {_BOUNDS[kind]} {error.validator_value}, got {_show(error.instance)}",
            prefer_key=False,
        )
    elif kind == "minItems":
        yield at(path, f"needs at least {error.validator_value} item(s)")
    elif kind == "uniqueItems":
        yield at(path, "has duplicate items")
    elif kind == "minLength":
        yield at(path, "must not be empty", prefer_key=False)
    elif kind == "maxLength":
        yield at(
            path, f"is longer than the {error.validator_value} characters allowed", prefer_key=False
        )
    elif kind == "maxItems":
        yield at(path, f"has more than the {error.validator_value} items allowed")
    else:  # never echo a whole (possibly huge) value back
        yield at(path, _show(error.message) if len(error.message) > 200 else error.message)


_BOUNDS = {
    "minimum": ">=",
    "maximum": "<=",
    "exclusiveMinimum": ">",
    "exclusiveMaximum": "<",
}


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.75)
    return f"; did you mean '{close[0]}'?" if close else ""


def _type_name(value: Any) -> str:
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "list",
        dict: "mapping",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "{...}" if isinstance(value, dict) else "[...]"
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def with_defaults(kind: str, data: dict) -> dict:
    """A copy of ``data`` with the schema's defaults filled in (data must be valid)."""
    schema = load_schema(kind)
    return _fill(schema, copy.deepcopy(data), schema)


def _fill(node: dict, value: Any, root: dict) -> Any:
    if "$ref" in node:
        node = _resolve(root, node["$ref"])
    if isinstance(value, dict):
        for key, sub in node.get("properties", {}).items():
            target = _resolve(root, sub["$ref"]) if "$ref" in sub else sub
            if key not in value:
                default = sub.get("default", target.get("default", _MISSING))
                if default is _MISSING:
                    continue
                value[key] = copy.deepcopy(default)
            value[key] = _fill(sub, value[key], root)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        value = [_fill(node["items"], item, root) for item in value]
    return value


_MISSING = object()


def _resolve(root: dict, ref: str) -> dict:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node
