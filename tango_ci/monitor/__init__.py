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

import json
from pathlib import Path

import numpy as np

from tango_ci.exceptions import TangoError
from tango_ci.monitor.drift import chi2_test, ks_test, mmd_test
from tango_ci.rundir import display, write_json

REFERENCE = "reference.json"
#: each sample is cut to this many records for the kernel tests (cost grows with its square)
MAX_SAMPLE = 400
MIN_RECORDS = 20


def read_window(source: Path, version: str | None, window: int) -> list[dict]:
    """The last ``window`` records of ``version`` (default: every version) from a log store
    (and its rotated files) or an exported JSON-lines file."""
    from tango_ci.runtime.logs import log_files, read_records

    if source.suffix == ".jsonl":
        records = []
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            try:
                records.append(json.loads(line))
            except ValueError:
                raise TangoError(f"{display(source)}:{number}: not a JSON record") from None
    else:
        files = log_files(source)
        if not files:
            raise TangoError(f"{display(source)}: no prediction log there")
        records = [r for f in files for r in read_records(f)]
    for number, record in enumerate(records, 1):
        problem = record_problem(record)
        if problem:
            raise TangoError(f"{display(source)}: record {number}: {problem}")
    chosen = [
        r
        for r in records
        if r.get("role", "champion") == "champion"
        and (version is None or r.get("model_version") == version)
    ]
    return chosen[-window:]


def _numbers(value, limit: int = 100_000) -> bool:
    return (
        isinstance(value, list)
        and len(value) <= limit
        and all(
            isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in value
        )
    )


def record_problem(record) -> str | None:
    """What is wrong with one logged record (logs and exports are untrusted), or None."""
    if not isinstance(record, dict):
        return "not an object"
    if not isinstance(record.get("model_version"), str):
        return "'model_version' is not text"
    outputs = record.get("outputs")
    if not isinstance(outputs, dict):
        return "'outputs' is not an object"
    if "probabilities" in outputs and not _numbers(outputs["probabilities"]):
        return "'outputs.probabilities' is not a list of finite numbers"
    boxes = outputs.get("boxes", [])
    if not isinstance(boxes, list) or not all(
        isinstance(b, dict)
        and isinstance(b.get("class"), int)
        and isinstance(b.get("score"), int | float)
        and np.isfinite(b["score"])
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
    rows = [
        r["input_summary"]["mean"] + r["input_summary"]["std"]
        for r in records
        if len(r.get("input_summary", {}).get("shape", [])) == 3
    ]
    return np.asarray(rows, dtype=np.float64)


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
    from tango_ci.runtime import Bundle

    loaded = Bundle(bundle)  # hashes checked, the reference among them
    reference_path = Path(bundle) / REFERENCE
    if not reference_path.is_file():
        raise TangoError(f"{display(reference_path)}: the bundle has no reference; redeploy it")
    reference = json.loads(reference_path.read_text())["records"]
    version = version or loaded.version
    current = read_window(Path(source), version, window)
    if len(current) < MIN_RECORDS:
        raise TangoError(
            f"{display(source)}: {len(current)} records of version {version!r}; monitoring "
            f"needs at least {MIN_RECORDS}"
        )
    kind, classes = _kind(reference), len(loaded.labels)
    for number, record in enumerate(current, 1):
        answer = record["outputs"]
        if kind == "probabilities" and len(answer.get("probabilities", [])) != classes:
            raise TangoError(
                f"{display(source)}: record {number} of the window: not {classes} class "
                "probabilities, as the bundle has"
            )
        if any(not 0 <= box["class"] < classes for box in answer.get("boxes", [])):
            raise TangoError(
                f"{display(source)}: record {number} of the window: a box class "
                f"outside the bundle's {classes}"
            )
    ref_out, ref_classes = _outputs(reference, kind)
    cur_out, cur_classes = _outputs(current, kind)
    checks: dict[str, dict] = {
        "outputs_mmd": mmd_test(_cut(ref_out), _cut(cur_out, 1), permutations),
        "outputs_ks": ks_test(ref_out, cur_out, alpha),
        "class_mix": chi2_test(ref_classes, cur_classes, classes),
    }
    ref_in, cur_in = _inputs(reference), _inputs(current)
    if len(ref_in) >= MIN_RECORDS and len(cur_in) >= MIN_RECORDS:
        checks["inputs_mmd"] = mmd_test(_cut(ref_in), _cut(cur_in, 1), permutations)
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
        "mean_confidence": confidence,
        "drift": any(c["drift"] for c in checks.values()),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "drift.json", result)
    from tango_ci.monitor.report import write_report

    write_report(result, ref_out, cur_out, ref_classes, cur_classes, loaded.labels, out)
    return result


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
