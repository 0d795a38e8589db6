"""``tango monitor``: a served model's recent answers against the reference kept in its bundle.

The reference (``reference.json`` in the bundle, written by ``tango deploy``) is the bundle's own
answers and input summaries on the run's evaluation images. A window of the prediction log
(the local SQLite store or a ``tango logs export`` file) of one model version is compared with
it by :mod:`tango_ci.monitor.drift`: MMD with a permutation p-value and per-class KS
(Bonferroni) on the outputs, MMD on the input summaries (per-channel mean and standard
deviation of each image), and the class mix (chi-square). Each test's p-value is held against
``alpha`` divided by the number of tests; any below is drift. A JSON and a Markdown report with
plots are written; the CLI exits 3 on drift.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections import deque
from pathlib import Path

import numpy as np

from tango_ci.exceptions import TangoError
from tango_ci.monitor.drift import chi2_test, ks_test, mmd_test
from tango_ci.rundir import display, write_json

REFERENCE = "reference.json"
#: each sample is cut to this many records for the kernel tests (cost grows with its square)
MAX_SAMPLE = 400
MIN_RECORDS = 20


#: an exported log larger than this is refused: every line is parsed and checked
MAX_EXPORT_BYTES = 2**30
MAX_LINE_BYTES = 16 * 2**20
#: a request's content hash as serve logs it (and names a kept image by)
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class LogRecordError(TangoError):
    """A prediction log or export that cannot be read, or a record not as serve writes it."""


def unreadable_log(path: Path, exc: Exception) -> LogRecordError:
    """The one line for a log file that SQLite cannot read or whose row is malformed."""
    from tango_ci.runtime.logs import LogError

    if isinstance(exc, LogError):
        return LogRecordError(f"{display(path)}: {str(exc)[:200]}")
    return LogRecordError(f"{display(path)}: not a prediction log ({str(exc)[:160]})")


def read_window(source: Path, version: str | None, window: int) -> list[dict]:
    """The last ``window`` champion records of ``version`` (default: every version) from a
    log store (newest files first, only as many rows as needed) or an exported JSON-lines file
    (streamed, every line checked)."""
    if window < 1:
        raise TangoError(f"the window must be at least 1 record, not {window}")
    if source.suffix == ".jsonl":
        return _export_window(source, version, window)
    from tango_ci.runtime.logs import LogError, iter_records, log_files

    files = log_files(source)
    if not files:
        raise TangoError(f"{display(source)}: no prediction log there")
    where = {"role": "champion"} | ({} if version is None else {"model_version": version})
    chosen: list[dict] = []
    for path in reversed(files):
        try:
            rows = list(iter_records(path, last=window - len(chosen), where=where))
        except (sqlite3.DatabaseError, LogError) as exc:
            raise unreadable_log(path, exc) from None
        for row, record in rows:
            problem = record_problem(record)
            if problem:
                raise LogRecordError(f"{display(path)}: row {row}: {problem}")
        chosen[:0] = [record for _, record in rows]
        if len(chosen) >= window:
            break
    return chosen


def _export_window(source: Path, version: str | None, window: int) -> list[dict]:
    from tango_ci.jsonfiles import strict_json

    if source.is_symlink() or not source.is_file():
        raise TangoError(f"{display(source)}: not a regular file")
    size = source.stat().st_size
    if size > MAX_EXPORT_BYTES:
        raise TangoError(
            f"{display(source)}: {size} bytes, more than the {MAX_EXPORT_BYTES >> 20} MiB "
            "an export may have (export a shorter span with --since)"
        )
    chosen: deque[dict] = deque(maxlen=window)
    with source.open("rb") as stream:
        for number, line in enumerate(iter(lambda: stream.readline(MAX_LINE_BYTES + 1), b""), 1):
            if len(line) > MAX_LINE_BYTES:
                raise LogRecordError(f"{display(source)}:{number}: longer than a record may be")
            try:
                record = strict_json(line)
            except (ValueError, UnicodeDecodeError) as exc:
                raise LogRecordError(
                    f"{display(source)}:{number}: not a JSON record ({str(exc)[:80]})"
                ) from None
            problem = record_problem(record)
            if problem:
                raise LogRecordError(f"{display(source)}: record {number}: {problem}")
            if record.get("role", "champion") == "champion" and (
                version is None or record.get("model_version") == version
            ):
                chosen.append(record)
    return list(chosen)


def finite_number(value: object) -> bool:
    """A JSON number (no bool) that is finite as a float: huge integers are not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _numbers(value, limit: int = 100_000) -> bool:
    return isinstance(value, list) and len(value) <= limit and all(finite_number(v) for v in value)


def record_problem(record) -> str | None:
    """What is wrong with one logged record (logs and exports are untrusted), or None."""
    if not isinstance(record, dict):
        return "not an object"
    if not isinstance(record.get("model_version"), str):
        return "'model_version' is not text"
    for key in ("role", "request"):
        if not isinstance(record.get(key, ""), str):
            return f"'{key}' is not text"
    if "time" in record and not finite_number(record["time"]):
        return "'time' is not a finite number"
    digest = record.get("input_hash", "0" * 64)
    if not isinstance(digest, str) or not SHA256_HEX.fullmatch(digest):
        return "'input_hash' is not a sha256 in hex"
    outputs = record.get("outputs")
    if not isinstance(outputs, dict):
        return "'outputs' is not an object"
    if "probabilities" in outputs and not _numbers(outputs["probabilities"]):
        return "'outputs.probabilities' is not a list of finite numbers"
    boxes = outputs.get("boxes", [])
    if not isinstance(boxes, list) or not all(
        isinstance(b, dict)
        and isinstance(b.get("class"), int)
        and not isinstance(b.get("class"), bool)
        and finite_number(b.get("score"))
        for b in boxes
    ):
        return "'outputs.boxes' is not a list of boxes with class and score"
    summary = record.get("input_summary", {})
    if not isinstance(summary, dict) or not all(
        _numbers(summary.get(k, [])) for k in ("shape", "mean", "std")
    ):
        return "'input_summary' is not shape, mean and std lists of numbers"
    return None


def _kind(records: list[dict]) -> str:
    """What the answers hold: class ``probabilities`` or detection ``boxes``."""
    first: dict = next((r["outputs"] for r in records if isinstance(r.get("outputs"), dict)), {})
    return "probabilities" if "probabilities" in first else "boxes"


def _outputs(records: list[dict], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Output features (probabilities; or box count and mean score) and predicted classes."""
    if kind == "probabilities":
        rows = [r["outputs"] for r in records if isinstance(r.get("outputs"), dict)]
        probabilities = np.asarray([row["probabilities"] for row in rows], dtype=np.float64)
        return probabilities, probabilities.argmax(1)
    features, classes = [], []
    for record in records:
        boxes = (record.get("outputs") or {}).get("boxes", [])
        scores = [b["score"] for b in boxes]
        features.append([len(boxes), float(np.mean(scores)) if scores else 0.0])
        classes += [b["class"] for b in boxes]
    return np.asarray(features, dtype=np.float64), np.asarray(classes, dtype=int)


def _inputs(records: list[dict]) -> np.ndarray:
    """Per-channel mean and standard deviation of every image input (tensor requests aside)."""
    rows = [r["input_summary"]["mean"] + r["input_summary"]["std"] for r in records if _is_image(r)]
    return np.asarray(rows, dtype=np.float64)


def _reference(bundle: Path, documents: dict[str, bytes]) -> list[dict]:
    """The reference records, from the bytes the bundle verified against its manifest (never
    read again from the folder, which may have changed since), as strict JSON."""
    from tango_ci.jsonfiles import strict_json

    path = bundle / REFERENCE
    data = documents.get(REFERENCE)
    if data is None:
        raise TangoError(f"{display(path)}: the bundle lists no reference; redeploy it")
    try:
        records = strict_json(data).get("records")
    except (ValueError, AttributeError):
        records = None
    if not isinstance(records, list) or not records:
        raise TangoError(f"{display(path)}: not a reference (no 'records' list)")
    for number, record in enumerate(records, 1):
        # the reference is the bundle's own answers: no version or hash of a request
        problem = record_problem(
            {"model_version": ""} | record if isinstance(record, dict) else record
        )
        if problem:
            raise LogRecordError(f"{display(path)}: record {number}: {problem}")
    return records


def _channels(records: list[dict]) -> int | None:
    """The channel count of the first image input's statistics (the reference's first)."""
    return next(
        (len(r["input_summary"]["mean"]) for r in records if _is_image(r)),
        None,
    )


def _is_image(record: dict) -> bool:
    return len(record.get("input_summary", {}).get("shape", [])) == 3


def _window_problem(record: dict, kind: str, classes: int, channels: int | None) -> str | None:
    """What makes one checked record unfit to compare with this bundle's reference."""
    answer = record["outputs"]
    if kind == "probabilities" and len(answer.get("probabilities", [])) != classes:
        return f"not {classes} class probabilities, as the bundle has"
    if kind == "boxes" and "probabilities" in answer:
        return "class probabilities where the bundle answers with boxes"
    if any(not 0 <= box["class"] < classes for box in answer.get("boxes", [])):
        return f"a box class outside the bundle's {classes}"
    summary = record.get("input_summary", {})
    if _is_image(record) and not (
        len(summary.get("mean", [])) == len(summary.get("std", [])) == channels
    ):
        return f"the input statistics are not {channels} channel means and deviations"
    return None


def _cut(sample: np.ndarray, seed: int = 0) -> np.ndarray:
    if len(sample) <= MAX_SAMPLE:
        return sample
    return sample[np.random.default_rng(seed).choice(len(sample), MAX_SAMPLE, replace=False)]


def monitor(
    source: Path,
    bundle: Path,
    out: Path,
    *,
    window: int = 500,
    alpha: float = 0.05,
    version: str | None = None,
    permutations: int = 300,
) -> dict:
    """Compare the last ``window`` answers of ``version`` (default: the bundle's) with the
    bundle's reference; writes ``drift.json``, ``drift.md`` and plots into ``out``."""
    from tango_ci.runtime import Bundle, BundleError

    try:
        loaded = Bundle(bundle)  # hashes checked, the reference among them
    except BundleError as exc:
        raise TangoError(f"{display(bundle)}: {exc}") from None
    reference = _reference(Path(bundle), loaded.documents)
    version = version or loaded.version
    current = read_window(Path(source), version, window)
    if len(current) < MIN_RECORDS:
        raise TangoError(
            f"{display(source)}: {len(current)} records of version {version!r}; monitoring "
            f"needs at least {MIN_RECORDS}"
        )
    kind, classes = _kind(reference), len(loaded.labels)
    channels = _channels(reference + current)
    shown = display(Path(bundle) / REFERENCE)
    for name, records in ((shown, reference), (display(source), current)):
        for number, record in enumerate(records, 1):
            where = f"{name}: record {number}" + (" of the window" if records is current else "")
            problem = _window_problem(record, kind, classes, channels)
            if problem:
                raise LogRecordError(f"{where}: {problem}")
    ref_out, ref_classes = _outputs(reference, kind)
    cur_out, cur_classes = _outputs(current, kind)
    checks: dict[str, dict] = {
        "outputs_mmd": mmd_test(_cut(ref_out), _cut(cur_out, 1), permutations),
        "outputs_ks": ks_test(ref_out, cur_out, alpha),
        "class_mix": chi2_test(ref_classes, cur_classes, classes),
    }
    ref_in, cur_in = _inputs(reference), _inputs(current)
    skipped: dict[str, str] = {}
    too_few = _too_few_inputs(len(ref_in), len(cur_in))
    if too_few is None:
        checks["inputs_mmd"] = mmd_test(_cut(ref_in), _cut(cur_in, 1), permutations)
    else:  # said in drift.json, drift.md and by the CLI: a missing test is not a passed one
        skipped["inputs_mmd"] = too_few
    threshold = alpha / len(checks)
    for check in checks.values():
        p_value = (
            min(check["p_values"]) * len(check["p_values"])
            if "p_values" in check
            else check["p_value"]
        )
        check["p_value_corrected"] = min(1.0, p_value)
        check["drift"] = check["p_value_corrected"] < threshold
    probabilities = kind == "probabilities"
    confidence = {
        "reference": float(ref_out.max(1).mean()) if probabilities else None,
        "current": float(cur_out.max(1).mean()) if probabilities else None,
    }
    result = {
        "source": str(source),
        "version": version,
        "task": loaded.task,
        "answers": kind,
        "records": len(current),
        "reference_records": len(reference),
        "window": {"first": current[0].get("time"), "last": current[-1].get("time")},
        "alpha": alpha,
        "threshold": threshold,
        "checks": checks,
        "skipped": skipped,
        "mean_confidence": confidence,
        "drift": any(c["drift"] for c in checks.values()),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "drift.json", result)
    from tango_ci.monitor.report import write_report

    write_report(result, ref_out, cur_out, ref_classes, cur_classes, loaded.labels, out)
    return result


def _too_few_inputs(reference: int, current: int) -> str | None:
    """Why the input test cannot run, given the image records on each side; None if it can."""
    if reference < MIN_RECORDS:
        return (
            f"input drift not tested: the bundle's reference has {reference} image records, "
            f"{MIN_RECORDS} needed (deploy from a run with more evaluation images)"
        )
    if current < MIN_RECORDS:
        return (
            f"input drift not tested: the window has {current} answers to images (the others "
            f"answered tensors), {MIN_RECORDS} needed"
        )
    return None


def write_reference(bundle: Path, images: np.ndarray, split: str) -> dict:
    """The bundle's answers and input summaries on ``images`` (uint8 HWC), as the reference
    ``tango monitor`` compares served answers with."""
    from tango_ci.runtime import Bundle
    from tango_ci.runtime.images import fit
    from tango_ci.runtime.logs import input_summary

    loaded = Bundle(bundle)
    records = []
    for start in range(0, len(images), 32):
        chunk = list(images[start : start + 32])
        for image, answer in zip(chunk, loaded.answer(chunk), strict=True):
            fitted, _ = fit(image, loaded.preprocess)
            _, summary = input_summary(None, fitted)
            records.append({"outputs": answer, "input_summary": summary})
    return {"split": split, "images": len(records), "records": records}
