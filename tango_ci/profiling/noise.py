"""How far a network's timing moves between processes on this device: the floor under any
latency model's error.

A model cannot predict a network closer than the device times it twice. Some held-out networks
(the first by id, so a rerun picks the same) are built and timed again, each in a fresh
process with the profile's settings; the share of re-measurements within ±5% and ±10% of the
first is written into the model and its report beside the model's own error (a
re-measurement is used only with the first timing it was taken after). A busy or
throttling device shows here first: a floor far below 95% says to profile on a quiet runner
before blaming the model. Each re-measurement is appended to
``<engine>-<precision>.remeasured.jsonl`` the moment it is taken, so a killed profile resumes.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from tango_ci.jsonfiles import one_line_reason
from tango_ci.latency.records import MeasurementsError, append_record, read_measurements
from tango_ci.profiling.profile import latency_folder, measure_sample
from tango_ci.profiling.sample import ProfileSample
from tango_ci.progress import SILENT, Reporter
from tango_ci.spec import RunnerSpec

#: below this share of re-measurements within ±10%, the profile says the device is noisy
QUIET = 0.9


def remeasured_path(runner: RunnerSpec, engine: str, precision: str) -> Path:
    return latency_folder(runner) / f"{engine}-{precision}.remeasured.jsonl"


def remeasure(
    runner: RunnerSpec,
    engine: str,
    precision: str,
    held: list[dict],
    count: int,
    reporter: Reporter = SILENT,
    path: Path | None = None,
) -> list[tuple[float, float]]:
    """(first, again) p50 pairs of up to ``count`` of the ``held`` records, each network built
    and timed again in a fresh process; earlier re-measurements in ``path`` are reused."""
    path = path or remeasured_path(runner, engine, precision)
    chosen = sorted(held, key=lambda r: r["id"])[:count]
    # a re-measurement counts only against the first timing it was taken after (a profile
    # started afresh measures every network again)
    try:
        done = {r["id"]: r for r in read_measurements(path)}
    except MeasurementsError as exc:  # kept aside, never lost; the floor is measured afresh
        path.replace(path.with_name(path.name + ".broken"))
        reporter.log(f"{exc.message}; kept as {path.name}.broken, timing again")
        done = {}
    fresh = {
        r["id"]
        for r in chosen
        if r["id"] in done
        and done[r["id"]].get("first_p50_ms") == r["p50_ms"]
        and (_timing(done[r["id"]]) is not None or "failed" in done[r["id"]])
    }
    bar = reporter.task(f"re-timing {engine} {precision}", total=len(chosen))
    work = Path(tempfile.mkdtemp(prefix="tango-noise-"))
    try:
        for index, record in enumerate(chosen):
            bar.update(index, sample=record["describe"])
            if record["id"] in fresh:
                continue
            mark = {"id": record["id"], "first_p50_ms": record["p50_ms"]}
            sample = ProfileSample(record["sample"])
            folder = work / record["id"]
            try:
                from tango_ci.profiling.networks import write_sample  # torch: only to measure

                onnx_path, model_dir = write_sample(sample, folder)
                again = mark | measure_sample(
                    sample, onnx_path, model_dir, runner, engine, precision, folder
                )
            except Exception as exc:  # recorded, so a rerun does not try it again
                again = mark | {"failed": one_line_reason(exc)}
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            append_record(path, again)
            done[record["id"]] = again
            fresh.add(record["id"])
        bar.update(len(chosen))
    finally:
        bar.close()
        shutil.rmtree(work, ignore_errors=True)
    return [
        (float(r["p50_ms"]), second)
        for r in chosen
        if r["id"] in fresh and (second := _timing(done[r["id"]])) is not None
    ]


def _timing(record: dict) -> float | None:
    """A record's p50 when it is a positive finite number (the file may come from a pull
    request); None otherwise, and the network is timed again."""
    value = record.get("p50_ms")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 < value < float("inf") else None


def floor(pairs: list[tuple[float, float]]) -> dict | None:
    """The share of re-measurements within ±5% and ±10% of the first, and their mean relative
    difference; None without any pair."""
    if not pairs:
        return None
    first, second = np.array(pairs, dtype=np.float64).T
    relative = np.abs(second - first) / first
    return {
        "count": len(pairs),
        "within_5": float(np.mean(relative <= 0.05)),
        "within_10": float(np.mean(relative <= 0.10)),
        "mape": float(np.mean(relative)),
    }


def verdict(engine: str, precision: str, found: dict | None) -> str | None:
    """One line when the device's own timings move too much for any model, else None."""
    if found is None or found["within_10"] >= QUIET:
        return None
    return (
        f"{engine} {precision}: only {found['within_10']:.0%} of {found['count']} networks "
        f"timed again in a fresh process came within ±10% of their first timing; no latency "
        "model can beat that. Profile on a quiet runner (no other jobs, fixed CPU frequency)."
    )
