"""Untrusted JSON and the records made of it: size-limited, strict, and shape-checked.

Run folders downloaded from CI jobs, reports on ``reports/<project>`` branches, registry tag
messages and DVC listings are data a stranger may have written. Each is read here, never with
a bare ``json.loads``: the bytes are counted before they are parsed, ``NaN``/``Infinity`` and
huge nesting are refused, and every field the code goes on to use is checked for its type, so
a malformed file gives one line that names it instead of a ``KeyError`` further on.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from tango_ci.exceptions import TangoError
from tango_ci.rundir import strict_json

MAX_JSON_BYTES = 4 * 2**20  # a metrics.json or results.json is a few KiB
MAX_LISTING_BYTES = 8 * 2**20  # a DVC .dir listing: ~100 bytes per file
MAX_FILES = 10_000  # files in one artifact
MAX_PATH_CHARS = 1024
SHA256 = re.compile(r"^[0-9a-f]{64}\Z")
MD5 = re.compile(r"^[0-9a-f]{32}\Z")
DIR_MD5 = re.compile(r"^[0-9a-f]{32}\.dir\Z")
# project, target and artifact names: they become branch names, tag names and folder names.
# (\Z, not $, which also matches before a final newline: some callers use .match)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")
# an architecture is printed in tables and logs: as the trained-model schema allows, no markup
ARCHITECTURE = re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029\[\]<>`|]{0,300}")
ARCHITECTURE_IS = "at most 300 characters, without control characters or []<>`|"


class UntrustedDataError(TangoError):
    """A file or record from outside the trusted tree is malformed, too large or unsafe."""


def _kind(value: Any) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return kinds.get(type(value), "null" if value is None else "a number")


def parse_json(data: bytes | str, what: str, limit: int = MAX_JSON_BYTES) -> Any:
    """Strict JSON of at most ``limit`` bytes; ``what`` names the source in errors."""
    size = len(data.encode() if isinstance(data, str) else data)
    if size > limit:
        raise UntrustedDataError(
            f"{what} is {size} bytes, more than the {limit} allowed; it was not read"
        )
    try:
        return strict_json(data)
    except ValueError as error:
        raise UntrustedDataError(f"{what} is not valid JSON ({error})") from None


def read_json_file(path: Path, what: str, limit: int = MAX_JSON_BYTES) -> Any:
    """:func:`parse_json` of a regular file; a link or anything else is refused unread."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise UntrustedDataError(f"{what} is missing") from None
    if stat.S_ISLNK(info.st_mode):
        raise UntrustedDataError(f"{what} is a symbolic link; it was not followed")
    if not stat.S_ISREG(info.st_mode):
        raise UntrustedDataError(f"{what} is not a regular file")
    if info.st_size > limit:
        raise UntrustedDataError(
            f"{what} is {info.st_size} bytes, more than the {limit} allowed; it was not read"
        )
    with open(path, "rb") as handle:
        return parse_json(handle.read(limit + 1), what, limit)


def safe_relpath(text: Any, what: str) -> str:
    """``text`` if it is a normalised relative POSIX path that stays where it is put."""
    if not isinstance(text, str) or not text:
        raise UntrustedDataError(f"{what}: a path must be a non-empty string, not {_kind(text)}")
    shown = text if len(text) <= 80 else text[:77] + "..."
    if len(text) > MAX_PATH_CHARS or "\0" in text or "\\" in text:
        raise UntrustedDataError(f"{what}: unsafe path '{shown}'")
    path = PurePosixPath(text)
    if (
        path.is_absolute()
        or path.as_posix() != text
        or any(part in ("", ".", "..") for part in text.split("/"))
    ):
        raise UntrustedDataError(
            f"{what}: unsafe path '{shown}' (absolute, '..' or not "
            "normalised); nothing is written outside its folder"
        )
    return text


class Shape:
    """Field checks on one parsed document: ``Shape(data, what).object()`` etc.

    Each check names the document and the dotted field path, and returns the value.
    """

    def __init__(self, value: Any, what: str, path: str = "") -> None:
        self.value, self.what, self.path = value, what, path

    @property
    def where(self) -> str:
        return f"field '{self.path}'" if self.path else "the document"

    def _fail(self, expected: str) -> UntrustedDataError:
        return UntrustedDataError(
            f"{self.what}: {self.where} must be {expected}, not {_kind(self.value)}"
        )

    def _join(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def field(self, key: str) -> Shape:
        data = self.object()
        path = self._join(key)
        if key not in data:
            raise UntrustedDataError(f"{self.what}: field '{path}' is missing")
        return Shape(data[key], self.what, path)

    def optional(self, key: str) -> Shape | None:
        data = self.object()
        if data.get(key) is None:
            return None
        return self.field(key)

    def object(self) -> dict:
        if not isinstance(self.value, dict):
            raise self._fail("an object")
        return self.value

    def items(self, limit: int = MAX_FILES) -> list[tuple[str, Shape]]:
        data = self.object()
        if len(data) > limit:
            raise UntrustedDataError(
                f"{self.what}: {self.where} has {len(data)} entries, more than the {limit} allowed"
            )
        return [(key, Shape(value, self.what, self._join(key))) for key, value in data.items()]

    def list(self, limit: int = MAX_FILES) -> list[Shape]:
        if not isinstance(self.value, list):
            raise self._fail("a list")
        if len(self.value) > limit:
            raise UntrustedDataError(
                f"{self.what}: {self.where} has {len(self.value)} "
                f"entries, more than the {limit} allowed"
            )
        return [Shape(v, self.what, f"{self.path}[{i}]") for i, v in enumerate(self.value)]

    def string(self, pattern: re.Pattern | None = None, expected: str = "") -> str:
        if not isinstance(self.value, str) or len(self.value) > MAX_PATH_CHARS:
            raise self._fail("a string")
        if pattern is not None and not pattern.fullmatch(self.value):
            shown = self.value if len(self.value) <= 80 else self.value[:77] + "..."
            raise UntrustedDataError(
                f"{self.what}: {self.where} must be {expected or 'a name'}, not '{shown}'"
            )
        return self.value

    def name(self) -> str:
        return self.string(NAME, "a name of letters, digits, '.', '_' and '-'")

    def number(self) -> float:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise self._fail("a number")
        if not abs(self.value) <= sys.float_info.max:  # an integer float() cannot hold
            raise UntrustedDataError(f"{self.what}: {self.where} is too large for a number")
        return self.value

    def count(self) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int) or self.value < 0:
            raise self._fail("a whole number >= 0")
        return self.value

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self._fail("true or false")
        return self.value


# ---------------------------------------------------------------------------- DVC artifacts
def check_artifact(value: Any, what: str) -> dict:
    """An artifact record on its own (what :func:`tango_ci.dvcstore.push_dir` returns)."""
    return check_artifact_shape(Shape(value, what))


def check_artifact_shape(shape: Shape) -> dict:
    """``shape`` (a field holding an artifact record) checked; returns the record."""
    record = shape.object()
    shape.field("remote").string()
    shape.field("md5").string(DIR_MD5, "a DVC directory hash (32 hex digits and '.dir')")
    listed = shape.field("files")
    files = listed.items(MAX_FILES)
    where = f"{shape.what}: field '{listed.path}'"
    if not files:
        raise UntrustedDataError(f"{where} is empty")
    for path, digest in files:
        safe_relpath(path, where)
        digest.string(SHA256, "a sha256 (64 hex digits)")
    _no_file_inside_another([p for p, _ in files], where)
    for key in ("size", "nfiles"):
        if (field := shape.optional(key)) is not None:
            field.count()
    if (field := shape.optional("sha256")) is not None:
        field.string(SHA256, "a sha256 (64 hex digits)")
    return record


def _no_file_inside_another(paths: list[str], what: str) -> None:
    names = set(paths)
    for path in paths:
        parent = PurePosixPath(path).parent
        while parent.as_posix() != ".":
            if parent.as_posix() in names:
                raise UntrustedDataError(f"{what}: '{parent}' is a file and a folder")
            parent = parent.parent


# ---------------------------------------------------------------------------- registry records
def check_record(value: Any, what: str, *, artifact: bool = False) -> dict:
    """A registry version's record (the JSON in its tag message); ``artifact``: it must say
    where its artifact is (a pull needs it, a gate comparing metrics does not)."""
    shape = Shape(value, what)
    record = shape.object()
    if artifact or "artifact" in record:
        check_artifact_shape(shape.field("artifact"))
    for key in ("run", "engine", "precision", "report_commit"):
        if (field := shape.optional(key)) is not None:
            field.string()
    if (architecture := shape.optional("architecture")) is not None:
        architecture.string(ARCHITECTURE, ARCHITECTURE_IS)
    if (metrics := shape.optional("metrics")) is not None:
        for _, metric in metrics.items(64):
            if metric.value is not None:
                metric.number()
    if "recipe" in record:
        check_recipe(record["recipe"], what)
    return record


def check_recipe(value: Any, what: str) -> dict:
    """A recorded build recipe (``artifact.json``, results, registry): one this version can
    rebuild exactly, or refused."""
    from tango_ci.compile.recipes import Recipe, RecipeError

    try:
        return Recipe.from_json(value).to_json()
    except RecipeError as exc:
        raise UntrustedDataError(f"{what}: {exc}") from None


# ---------------------------------------------------------------------------- report results
def check_target_results(shape: Shape, *, stored: bool) -> dict:
    """One target of results.json: verdict, engine, metrics, and (``stored``) its artifact."""
    entry = shape.object()
    shape.field("passed").boolean()
    for key in ("engine", "precision", "runner"):
        shape.field(key).string()
    if (architecture := shape.optional("architecture")) is not None:
        architecture.string(ARCHITECTURE, ARCHITECTURE_IS)
    for _, metric in shape.field("metrics").items(64):
        if metric.value is not None:
            metric.number()
    failed = shape.optional("failed")
    if failed is not None:
        for item in failed.list(256):
            item.string()
    if "recipe" in entry:
        check_recipe(entry["recipe"], f"{shape.what}: {shape.where}")
    if stored or "artifact" in entry:
        check_artifact_shape(shape.field("artifact"))
    return entry


def check_results(value: Any, what: str, *, stored: bool = False) -> dict:
    """results.json of a report: the project, run and each target's verdict and metrics."""
    shape = Shape(value, what)
    results = shape.object()
    shape.field("project").name()
    shape.field("run").name()
    shape.field("task").string()
    shape.field("architecture").string(ARCHITECTURE, ARCHITECTURE_IS)
    shape.field("passed").boolean()
    if (path := shape.optional("path")) is not None:
        safe_relpath(path.string(), f"{what}: field 'path'")
    classes = shape.optional("classes")
    if classes is not None:
        for item in classes.list(100_000):
            item.string()
    if (source := shape.optional("source_commit")) is not None:
        source.string(re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?"), "a commit id")
    targets = shape.field("targets").items(1000)
    for name, target in targets:
        Shape(name, what, "targets").name()
        check_target_results(target, stored=stored)
    return results


# ---------------------------------------------------------------------------- run folders
def check_run_spec(value: Any, what: str) -> dict:
    """spec.json of a run: the project's name and task, and its targets' names."""
    shape = Shape(value, what)
    shape.object()
    spec = shape.field("spec")
    spec.field("name").name()
    spec.field("task").string()
    if (targets := spec.optional("targets")) is not None:
        for target in targets.list(1000):
            target.field("name").name()
    if (path := shape.optional("project_file")) is not None:
        path.string()
    return value


def check_decision(value: Any, what: str) -> dict:
    """gate/decision.json: the verdict of the run and of each target, with its checks."""
    shape = Shape(value, what)
    shape.field("passed").boolean()
    for name, target in shape.field("targets").items(1000):
        Shape(name, what, "targets").name()
        target.field("passed").boolean()
        for check in target.field("checks").list(1000):
            check.field("check").string()
            check.field("status").string()
    return value


def check_model(value: Any, what: str) -> dict:
    """train/model.json: a TrainedModel record, as its schema (schemas/run/) defines it."""
    from tango_ci.contracts import schema_problem

    problem = schema_problem("trained-model", value)
    if problem:
        raise UntrustedDataError(f"{what}: {problem}")
    return value


MAX_TASK_METRICS = 256  # entries of a bench result's task_metrics


def check_metrics(value: Any, what: str) -> dict:
    """bench/<target>/metrics.json: what a report and the registry keep of a measurement."""
    shape = Shape(value, what)
    for key in ("engine", "precision", "runner", "artifact"):
        shape.field(key).string()
    latency = shape.field("latency")
    for key in ("p50_ms", "p90_ms", "p95_ms", "p99_ms"):
        latency.field(key).number()
    if (rss := latency.optional("peak_rss_mb")) is not None:
        rss.number()
    quality = shape.field("quality")
    quality.field("name").string(NAME, "a metric name")
    quality.field("label").string()
    quality.field("value").number()
    for key, field in shape.field("task_metrics").items(MAX_TASK_METRICS):
        if isinstance(field.value, (int, float)) and not isinstance(field.value, bool):
            field.number()  # finite: the registry keeps the ones gate.metric can name
        elif not isinstance(field.value, (dict, list, str)):
            raise UntrustedDataError(
                f"{what}: field 'task_metrics.{key[:40]}' must be a "
                "number, an object, a list or a string"
            )
    if (error := shape.optional("prediction_error")) is not None and error.value is not None:
        error.number()
    if (build := shape.optional("build")) is not None:
        safe_relpath(build.field("file").string(), f"{what}: field 'build.file'")
        build.field("sha256").string(SHA256, "a sha256 (64 hex digits)")
    return value


def check_built(value: Any, what: str) -> dict:
    """compile/<target>/artifact.json: the artifact's main file and its sha256."""
    shape = Shape(value, what)
    safe_relpath(shape.field("file").string(), f"{what}: field 'file'")
    shape.field("sha256").string(SHA256, "a sha256 (64 hex digits)")
    return value


def manifest_files(value: Any, what: str) -> dict[str, str]:
    """A stage manifest's recorded files (inputs and outputs): run-relative path -> sha256."""
    shape = Shape(value, what)
    shape.object()
    found: dict[str, str] = {}
    for section in ("inputs", "outputs"):
        if (entries := shape.optional(section)) is None:
            continue
        for _, entry in entries.items(MAX_FILES):
            if not isinstance(entry.value, dict) or "sha256" not in entry.value:
                continue  # a recorded value, not a file
            path = entry.field("path").string()
            found[path] = entry.field("sha256").string(SHA256, "a sha256 (64 hex digits)")
    return found
