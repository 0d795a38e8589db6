"""Label Studio's JSON-MIN export read as its full JSON export.

JSON-MIN writes one record per annotation (the newest first) with the task's data at the top
(``image``, ``input_hash``), the annotation's facts (``annotation_id``, ``created_at``,
``updated_at``, ``annotator``, ``lead_time``) and each control's results under the control's
name: a single choice as its text, several as ``{"choices": [...]}``, and regions as a list of
their values with their labels (``rectanglelabels``, ``polygonlabels``, ...). The records of
one task (by ``id``, else by image) become one task with one annotation per record, so the
full export's rules hold: the newest annotation counts, and a region other than a rectangle
rejects the task for detection. A text field of the task's data cannot be told from a single
choice: the queue's ``label`` control is read first, and two candidates are said, not guessed.
"""

from __future__ import annotations

from typing import Any

#: top-level keys of a record that are the task's data or the annotation's facts, not results
FACTS = frozenset(
    {"id", "image", "input_hash", "annotator", "annotation_id", "created_at", "updated_at"}
    | {"lead_time", "agreement", "draft_id", "project", "history", "total_annotations"}
)


def is_min(task: object) -> bool:
    """Whether ``task`` is a JSON-MIN record rather than a task of the full export."""
    return (
        isinstance(task, dict)
        and "annotations" not in task
        and "data" not in task
        and isinstance(task.get("image"), str)
    )


def as_tasks(records: list) -> list[tuple[str, object]]:
    """JSON-MIN ``records`` as tasks of the full export, each named by its first record and
    at its place; anything that is not a record is kept as it is (and rejected as a task)."""
    tasks: list[tuple[str, object]] = []
    by_task: dict[object, dict] = {}
    for index, record in enumerate(records):
        if not is_min(record):
            tasks.append((f"record {index}", record))
            continue
        number = record.get("id")
        key = ("id", number) if type(number) is int else ("image", record["image"])
        task = by_task.get(key)
        if task is None:
            data = {"image": record["image"]}
            if isinstance(record.get("input_hash"), str):
                data["input_hash"] = record["input_hash"]
            task = by_task[key] = {"data": data, "annotations": []}
            tasks.append((f"record {index}", task))
        results = _results(record)
        # a task never annotated has no annotation_id (a text field of its data is no result)
        if record.get("annotation_id") is not None or ("annotation_id" not in record and results):
            annotation = {"result": results}
            for fact, name in (("annotation_id", "id"), ("created_at",) * 2, ("updated_at",) * 2):
                if fact in record:
                    annotation[name] = record[fact]
            task["annotations"].append(annotation)
    return tasks


def _results(record: dict) -> list[dict]:
    """The results of a record, as the full export writes them. A ``<Rectangle>`` beside a
    ``<Labels>`` writes each region twice (the labels' copy has its geometry too) and JSON-MIN
    keeps no region id to pair them: the unlabelled copy of a labelled region is dropped."""
    results = []
    for control, value in record.items():
        if control in FACTS:
            continue
        for item in value if isinstance(value, list) else [value]:
            result = _result(control, item)
            if result is not None:
                results.append(result)
    labelled = {_where(r["value"]) for r in results if r["type"] == "labels"}
    return [
        r
        for r in results
        if r["type"] == "choices"
        or r["type"].endswith("labels")
        or _where(r["value"]) not in labelled
    ]


def _where(value: dict) -> tuple:
    """A region's geometry, to find its two copies."""
    return tuple(repr(value.get(k)) for k in ("x", "y", "width", "height", "points", "rotation"))


def _result(control: str, item: Any) -> dict | None:
    if isinstance(item, str):  # a single choice (or a text field of the task's data)
        return {"from_name": control, "type": "choices", "value": {"choices": [item]}}
    if not isinstance(item, dict):
        return None  # a number of the data, a rating: not a class or a region
    if "choices" in item:
        return {"from_name": control, "type": "choices", "value": item}
    kind = next((k for k in item if isinstance(k, str) and k.endswith("labels")), None)
    if kind is None:  # a region drawn without a label control: its keys say which
        kind = drawn_region(item)
        if kind is None:
            return None  # a text area, a rating, ...
    return {"from_name": control, "type": kind, "value": item}


def drawn_region(value: dict) -> str | None:
    """The region a result's value holds, from its keys: ``rectangle``, ``polygon``,
    ``ellipse``, ``brush``, ``keypoint``, or None for no region."""
    if "points" in value:
        return "polygon"
    if "rle" in value:
        return "brush"
    if "radiusX" in value:
        return "ellipse"
    if "width" in value and "height" in value:
        return "rectangle"
    if "x" in value and "y" in value:
        return "keypoint"
    return None
