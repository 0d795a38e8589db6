"""``tango runner profile``: time a designed sample on the device and fit its latency models.

Refused unless this host passes ``tango runner check`` for the runner: a model made elsewhere
would predict the wrong machine. Each measurement is appended (and flushed to disk) to
``runners/<runner>/latency/<engine>-<precision>.measurements.jsonl`` the moment it is taken, so
a killed profile resumes where it stopped; the design is a pure function of its options, so the
rerun draws the same samples. A sample whose build or measurement fails is recorded as failed
and not tried again.

Whole networks are split by a hash of their description: 30% are held out, never fitted, and
the model's error on them is written into the model file and its report.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tango_ci.bench.feasibility import build_and_measure
from tango_ci.bench.latency import host_facts
from tango_ci.compile import capabilities
from tango_ci.exceptions import TangoError
from tango_ci.jsonfiles import one_line_reason
from tango_ci.latency.features import feature_set, network_features
from tango_ci.latency.records import append_record, models_folder, read_measurements
from tango_ci.plugins import ENGINES
from tango_ci.profiling.refeature import refresh_features
from tango_ci.profiling.sample import ProfileSample, design
from tango_ci.progress import SILENT, Reporter
from tango_ci.spec import RunnerSpec, TargetSpec

# short measurements: the model is fitted on many networks, not on one precise timing
PROFILE_SETTINGS: dict[str, Any] = {
    "max_seconds": 1.0,
    "min_repeats": 20,
    "min_seconds": 0.3,
    "target_ci": 0.02,
}


@dataclass(frozen=True)
class ProfileOptions:
    engines: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ()
    blocks: int = 120
    networks: int = 240
    batches: tuple[int, ...] = (1,)
    time_budget_s: float = 3600.0
    seed: int = 0
    with_yolo: bool = True
    #: held-out networks timed again in a fresh process (the noise floor); 0: none
    noise_networks: int = 20


def pairs_of(
    runner: RunnerSpec, engines: tuple[str, ...] = (), precisions: tuple[str, ...] = ()
) -> list[tuple[str, str]]:
    """Every (engine, precision) the runner offers and the engine builds, optionally filtered;
    a filter naming something the runner lacks is refused."""
    accelerator = runner.hardware.accelerator.kind
    offered = [
        (engine.name, precision)
        for engine in runner.engines
        if engine.name in ENGINES
        for precision in runner.precisions
        if capabilities(engine.name).refusal(precision, accelerator) is None
    ]
    for name, asked, have in (
        ("engine", engines, {e for e, _ in offered}),
        ("precision", precisions, {p for _, p in offered}),
    ):
        unknown = sorted(set(asked) - have)
        if unknown:
            raise TangoError(
                f"runner {runner.name} offers no {name} {', '.join(unknown)} to profile "
                f"(it has {', '.join(sorted(have)) or 'none'})"
            )
    return [
        (e, p)
        for e, p in offered
        if (not engines or e in engines) and (not precisions or p in precisions)
    ]


def runner_file(runner: RunnerSpec) -> Path:
    """``runners/<name>.yaml`` of ``runner``: its latency models live beside it."""
    if runner.path is None:
        raise TangoError(f"runner {runner.name} was not loaded from a file")
    return runner.path


def latency_folder(runner: RunnerSpec) -> Path:
    return models_folder(runner_file(runner))


def measurements_path(runner: RunnerSpec, engine: str, precision: str) -> Path:
    return latency_folder(runner) / f"{engine}-{precision}.measurements.jsonl"


def measure_sample(
    sample: ProfileSample,
    onnx_path: Path,
    model_dir: Path | None,
    runner: RunnerSpec,
    engine: str,
    precision: str,
    workdir: Path,
) -> dict:
    target = TargetSpec(
        name="profile", runner=runner.name, engine=engine, precision=precision, batch=sample.batch
    )
    calibration = (
        np.random.default_rng(0)
        .standard_normal((8, 3, sample.size, sample.size))
        .astype(np.float32)
    )
    _, latency = build_and_measure(
        target,
        runner,
        onnx_path,
        model_dir,
        workdir / f"{engine}-{precision}",
        sample.size,
        calibration,
        PROFILE_SETTINGS,
    )
    return {k: latency[k] for k in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "cv", "repeats")}


def run_profile(
    runner: RunnerSpec, options: ProfileOptions, reporter: Reporter = SILENT
) -> dict[tuple[str, str], list[dict]]:
    """Measure what is missing of the design, within the time budget; returns every pair's
    records (earlier runs' included)."""
    pairs = pairs_of(runner, options.engines, options.precisions)
    samples = design(
        blocks=options.blocks,
        networks=options.networks,
        batches=options.batches,
        seed=options.seed,
        with_yolo=options.with_yolo,
    )
    records = {pair: read_measurements(measurements_path(runner, *pair)) for pair in pairs}
    by_id = {sample.id: sample for sample in samples}
    for (engine, precision), found in records.items():
        path = measurements_path(runner, engine, precision)
        refresh_features(path, engine, runner.threads, found, by_id, reporter)
    done = {pair: {r["id"] for r in found} for pair, found in records.items()}
    deadline = time.monotonic() + options.time_budget_s
    cpu = host_facts(runner.threads)["cpu"]
    bar = reporter.task(f"profiling {runner.name}", total=len(samples))
    work = Path(tempfile.mkdtemp(prefix="tango-profile-"))
    try:
        for index, sample in enumerate(samples):
            missing = [
                (e, p)
                for e, p in pairs
                if sample.id not in done[(e, p)]
                and not (sample.is_block and capabilities(e).needs_network)
            ]
            bar.update(index, sample=sample.describe())
            if not missing:
                continue
            if time.monotonic() > deadline:
                reporter.log(
                    f"time budget of {options.time_budget_s:g} s spent after {index} of "
                    f"{len(samples)} samples; rerun to measure the rest"
                )
                break
            folder = work / sample.id
            try:
                from tango_ci.profiling.networks import write_sample  # torch: only to measure

                onnx_path, model_dir = write_sample(sample, folder)
                features = {
                    name: network_features(onnx_path, sample.batch, sample.size, name)
                    for name in {feature_set(e, runner.threads) for e, _ in missing}
                }
            except Exception as exc:  # a sample that cannot be built is skipped, and said
                reporter.log(f"{sample.describe()}: not built ({one_line_reason(exc)})")
                shutil.rmtree(folder, ignore_errors=True)
                continue
            for engine, precision in missing:
                record = {
                    "id": sample.id,
                    "kind": "block" if sample.is_block else "network",
                    "sample": sample.spec,
                    "describe": sample.describe(),
                    "cpu": cpu,
                    "features": features[feature_set(engine, runner.threads)],
                    "feature_set": feature_set(engine, runner.threads),
                    "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                }
                try:
                    record |= measure_sample(
                        sample, onnx_path, model_dir, runner, engine, precision, folder
                    )
                except Exception as exc:  # recorded, so a rerun does not try it again
                    record["failed"] = one_line_reason(exc)
                append_record(measurements_path(runner, engine, precision), record)
                records[(engine, precision)].append(record)
                done[(engine, precision)].add(sample.id)
            shutil.rmtree(folder, ignore_errors=True)
        bar.update(len(samples))
    finally:
        bar.close()
        shutil.rmtree(work, ignore_errors=True)
    return records
