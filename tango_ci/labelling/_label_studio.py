"""Label Studio's JSON export: a list of tasks, each with ``data.image`` and annotations.

Of a task's annotations the newest counts (``updated_at``, then ``created_at``, then ``id``;
the last in the list on a tie); skipped ones (``was_cancelled``) never count. Its ``choices``
give the class; its rectangles (``rectanglelabels``, or a ``rectangle`` with a ``labels``
result of the same id) the boxes; any other region (a polygon, keypoint, brush mask, ellipse)
rejects the task for detection, as it has no box to give.

Its JSON-MIN export (one flat record per annotation) is read as the full one
(:mod:`._label_studio_min`).

``data.image`` is found among the files beside the export under the names Label Studio
writes: ``/data/upload/<project>/<8 hex digits>-<name>`` (an upload: the name with and without
its prefix), ``/data/local-files/?d=<path>`` (a local storage: the path, then its last part),
a URL (its path, then its last part) and a URL-encoded name (``my%20cat.png``); each also
under ``images/``. ``data.input_hash``, which the queue writes, finds the queued image
``images/<input_hash>.png`` first.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

from tango_ci.exceptions import TangoError
from tango_ci.labelling._base import BaseExportFormat, Box, Entry, labels_problem, shape_problem
from tango_ci.labelling._label_studio_min import as_tasks, drawn_region, is_min
from tango_ci.labelling.sources import with_images_folder

#: image regions other than rectangles, by the result type without its ``labels`` suffix
SHAPES = {
    "polygon": "a polygon",
    "keypoint": "a keypoint",
    "brush": "a brush mask",
    "ellipse": "an ellipse",
    "bitmask": "a bitmask",
    "vector": "a vector",
}
_URL_SCHEMES = ("http", "https", "s3", "gs", "azure-blob")
_UPLOAD = re.compile(r"/data/upload/(?:[^/]+/)?(?P<file>[^/]+)")
_UPLOAD_PREFIX = re.compile(r"[0-9a-f]{8}-(?P<name>.+)")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class LabelStudioFormat(BaseExportFormat):
    name = "Label Studio JSON"
    suffixes = (".json",)

    def read(self, path: Path, shown: str) -> list[Entry]:
        from tango_ci.jsonfiles import strict_json

        try:
            tasks = strict_json(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            reason = str(exc)[:120]
            raise TangoError(f"{shown}: not a Label Studio JSON export ({reason})") from None
        if not isinstance(tasks, list):
            raise TangoError(f"{shown}: a Label Studio export is a list of tasks")
        entries = []
        numbered = (
            as_tasks(tasks)
            if any(map(is_min, tasks))
            else [(f"task {number}", task) for number, task in enumerate(tasks)]
        )
        for tag, task in numbered:
            entry = Entry(shown, tag)
            try:
                _read_task(task, entry)
            except ValueError as exc:
                entry.problem = str(exc)
            entries.append(entry)
        return entries


#: the name of the class's <Choices> control in the tasks the queue writes
QUEUE_CONTROL = "label"


def _read_task(task: object, entry: Entry) -> None:
    data = task.get("data") if isinstance(task, dict) else None
    image = data.get("image") if isinstance(data, dict) else None
    annotations = task.get("annotations") if isinstance(task, dict) else None
    if not isinstance(image, str) or not isinstance(annotations, list):
        raise ValueError("no image or no annotation")
    entry.image = image
    digest = data.get("input_hash") if isinstance(data, dict) else None
    queued = (
        [f"images/{digest}.png"]
        if isinstance(digest, str) and _SHA256_HEX.fullmatch(digest)
        else []
    )
    entry.candidates = queued + image_names(image)
    annotation = newest(annotations)
    if annotation is None:
        raise ValueError("no image or no annotation")
    results = annotation.get("result") or []
    if not isinstance(results, list):
        raise ValueError("the annotation's 'result' is not a list")
    _read_results(results, entry)


def newest(annotations: list) -> dict | None:
    """The annotation that counts: the newest not skipped, or None."""
    kept = [
        (index, a)
        for index, a in enumerate(annotations)
        if isinstance(a, dict) and not a.get("was_cancelled")
    ]
    if not kept:
        return None

    def recency(pair: tuple[int, dict]) -> tuple[float, float, float, int]:
        index, a = pair
        number = a.get("id")
        ordinal = float(number) if type(number) is int else -math.inf
        return (_moment(a.get("updated_at")), _moment(a.get("created_at")), ordinal, index)

    return max(kept, key=recency)[1]


def _moment(text: object) -> float:
    if not isinstance(text, str):
        return -math.inf
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return -math.inf
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _read_results(results: list, entry: Entry) -> None:
    drawn: list[tuple[object, str, dict, tuple[str, ...]]] = []  # (id, shape, value, labels)
    named: dict[object, tuple[dict, tuple[str, ...]]] = {}  # a ``labels`` result's, by id
    chosen: dict[str, tuple[str, ...]] = {}  # the choices of each <Choices> control
    for item in results:
        if not isinstance(item, dict):
            raise ValueError("a result is not an object")
        kind = item.get("type")
        if not isinstance(kind, str):
            continue
        base = kind[: -len("labels")] if kind.endswith("labels") and kind != "labels" else kind
        if kind != "choices" and base not in ("rectangle", "labels", *SHAPES):
            continue  # not an image region (text, a rating, a relation): not imported
        identity = item.get("id") if isinstance(item.get("id"), str | int) else None
        if base in SHAPES:
            drawn.append((identity, base, {}, ()))
            continue
        value = item.get("value")
        if not isinstance(value, dict):
            raise ValueError(f"a '{kind}' result has no 'value' object")
        names = value.get(kind) if kind != "rectangle" else None
        if names is not None and not (
            isinstance(names, list) and all(isinstance(n, str) for n in names)
        ):
            raise ValueError(f"a result's '{kind}' is not a list of label names")
        if kind == "choices":
            control = item.get("from_name")
            chosen[control if isinstance(control, str) else ""] = tuple(names or ())
        elif kind == "labels":
            named[identity if identity is not None else object()] = (value, tuple(names or ()))
        else:
            drawn.append((identity, base, value, tuple(names or ())))
    if chosen:
        _choose(entry, chosen)
    # a <Rectangle> (or <Polygon> ...) beside a <Labels> writes two results of one id
    shapes = []
    for identity, shape, value, labels in drawn:
        if identity in named:
            labels = (*labels, *named.pop(identity)[1])
        if shape == "rectangle":
            _add_box(entry, value, labels)
        else:
            shapes.append(SHAPES[shape])
    for value, labels in named.values():
        inferred = drawn_region(value)
        if inferred == "rectangle":
            _add_box(entry, value, labels)
        elif inferred is not None:
            shapes.append(SHAPES[inferred])
    if shapes and entry.box_problem is None:
        entry.box_problem = shape_problem(shapes)


def _choose(entry: Entry, chosen: dict[str, tuple[str, ...]]) -> None:
    """The class of a classification task: the queue's ``label`` control, else the only one
    (another control, such as an image-quality choice, is not a class); exactly one choice."""
    if QUEUE_CONTROL in chosen:
        names = chosen[QUEUE_CONTROL]
    elif len(chosen) == 1:
        names = next(iter(chosen.values()))
    else:
        controls = ", ".join(sorted(f"'{c[:40]}'" for c in chosen))
        entry.label_problem = (
            f"has choices of {len(chosen)} controls ({controls}) and none is named "
            f"'{QUEUE_CONTROL}' (the class's control in the queue's tasks)"
        )
        return
    if len(names) > 1:
        shown = ", ".join(f"'{n[:40]}'" for n in names[:5])
        entry.label_problem = f"has {len(names)} choices ({shown}); an image gets one class"
    entry.label = names[0] if names else None


def _add_box(entry: Entry, value: dict, labels: tuple[str, ...]) -> None:
    try:
        numbers = [float(value[k]) for k in ("x", "y", "width", "height")]
        rotation = float(value.get("rotation") or 0)
    except (KeyError, TypeError, ValueError, OverflowError):
        entry.box_problem = entry.box_problem or "a box lacks its coordinates"
        return
    if not all(map(math.isfinite, [*numbers, rotation])):
        entry.box_problem = entry.box_problem or "a box lacks its coordinates"
        return
    entry.box_problem = entry.box_problem or labels_problem(labels)
    x, y, width, height = numbers
    entry.boxes.append(Box(labels, "percent", x, y, width, height, rotation, "corner"))


def image_names(address: str) -> list[str]:
    """The names, relative to the export's folder, that ``address`` may have there."""
    names = [address]
    try:
        parts = urlsplit(address)
    except ValueError:
        return with_images_folder(names)
    path = unquote(parts.path)
    if path.rstrip("/") == "/data/local-files":
        local = (parse_qs(parts.query).get("d") or [""])[0].lstrip("/")
        names += [local, PurePosixPath(local).name] if local else []
    elif upload := _UPLOAD.fullmatch(path):
        stored = upload["file"]
        original = _UPLOAD_PREFIX.fullmatch(stored)
        names += [stored, *([original["name"]] if original else [])]
    elif parts.scheme in _URL_SCHEMES:
        relative = path.lstrip("/")
        names += [relative, PurePosixPath(relative).name]
    elif "%" in address:
        names.append(unquote(address))
    return with_images_folder([n for n in names if n])
