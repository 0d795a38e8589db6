"""Measurements taken before a feature set changed, read again without timing anything.

A record keeps the features of its network as they were read when it was measured, under the
name of the set (``feature_set``; records from before the sets were read from the ONNX graph).
When an engine's set changes (PyTorch eager's now says which convolutions oneDNN runs at the runner's thread count),
each such record's network is built again from its sample, read with the engine's set, and the
file is rewritten whole, so a device's hour of measurements stays usable after an upgrade.

The file may come from a pull request: only a record whose sample is one of this profile's
design (by its id) is built, from the design's own description, never from the file's.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from tango_ci.latency.features import DEFAULT_FEATURE_SET, feature_set, network_features
from tango_ci.profiling.sample import ProfileSample
from tango_ci.progress import SILENT, Reporter


def stale(record: dict, engine: str, threads: int) -> bool:
    """Whether ``record`` (a measurement of ``engine`` on ``threads``) holds another feature
    set's features."""
    return "failed" not in record and (
        record.get("feature_set", DEFAULT_FEATURE_SET) != feature_set(engine, threads)
    )


def refresh_features(
    path: Path,
    engine: str,
    threads: int,
    records: list[dict],
    design: dict[str, ProfileSample],
    reporter: Reporter = SILENT,
) -> int:
    """Re-read the stale records of the measurements file ``path`` in place (and in
    ``records``) from the samples of ``design`` (by id); returns how many were. A record
    outside the design, or whose network no longer builds, keeps its old features and is left
    out of the fit by :func:`stale`."""
    from tango_ci.profiling.networks import write_sample  # torch: only when there is work

    todo = [r for r in records if stale(r, engine, threads) and r["id"] in design]
    if not todo:
        return 0
    wanted = feature_set(engine, threads)
    reporter.log(
        f"{path.name}: reading {len(todo)} earlier measurements with the {wanted} features "
        "(nothing is timed again)"
    )
    bar = reporter.task(f"re-reading {path.name}", total=len(todo))
    found: dict[str, dict] = {}
    done = 0
    try:
        for record in todo:
            if record["id"] not in found:
                sample = design[record["id"]]
                folder = Path(tempfile.mkdtemp(prefix="tango-refeature-"))
                try:
                    onnx_path, _ = write_sample(sample, folder)
                    found[record["id"]] = network_features(
                        onnx_path, sample.batch, sample.size, wanted
                    )
                except Exception:  # kept stale, and so never fitted
                    continue
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
            record["features"], record["feature_set"] = found[record["id"]], wanted
            done += 1
            bar.update(done)
    finally:
        bar.close()
        partial = path.with_name(path.name + ".partial")
        partial.write_text("".join(json.dumps(r, allow_nan=False) + "\n" for r in records))
        partial.replace(path)
    return done
