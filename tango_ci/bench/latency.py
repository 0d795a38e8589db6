"""Latency and peak memory, measured in a fresh process pinned to the runner's threads."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tango_ci.exceptions import TangoError

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TVM_NUM_THREADS")

# Beyond these limits a measurement describes the machine's interruptions (preemption, page
# faults, frequency changes) as much as the artifact: a quiet CPU runner gives a CV under 15%
# and a p99 within 1.5x the p50.
UNSTABLE_CV = 0.20
UNSTABLE_TAIL = 2.0  # p99 / p50
UNSTABLE_SPREAD = 0.20  # (max - min) / median of the p50s of repeated measuring processes
SLOW_RUN = 3.0  # a run this many times the p50 is counted as an outlier


def latency_stats(samples_ms: list[float], batch: int) -> dict:
    """Percentiles, mean, CV and throughput of ``samples_ms``, with a stability judgement."""
    values = np.asarray(samples_ms, dtype=np.float64)
    p50 = float(np.percentile(values, 50))
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    stats = {
        "p50_ms": p50,
        "p90_ms": float(np.percentile(values, 90)),
        "p95_ms": float(np.percentile(values, 95)),
        "p99_ms": float(np.percentile(values, 99)),
        "mean_ms": mean,
        "std_ms": std,
        "cv": std / mean if mean else 0.0,
        "min_ms": float(values.min()),
        "max_ms": float(values.max()),
        "outliers": int((values > SLOW_RUN * p50).sum()),
        "repeats": len(values),
        "throughput_per_s": batch * 1000.0 / p50 if p50 else 0.0,
    }
    reason = instability(stats)
    return stats | {"unstable": reason is not None, "unstable_reason": reason}


def instability(stats: dict) -> str | None:
    """Why the latency statistics ``stats`` cannot be trusted, or None when they can.

    Reads only what every stored ``latency`` dict has (plus ``outliers``, ``max_ms`` and
    ``runs`` when present), so it also judges measurements made before it existed.
    """
    reasons = []
    if stats["cv"] > UNSTABLE_CV:
        reasons.append(f"CV {stats['cv']:.0%} (over {UNSTABLE_CV:.0%})")
    p50 = stats["p50_ms"]
    if p50 and stats["p99_ms"] / p50 > UNSTABLE_TAIL:
        reasons.append(f"p99 {stats['p99_ms'] / p50:.1f}x the p50 (over {UNSTABLE_TAIL:g}x)")
    if reasons and stats.get("outliers"):
        reasons.append(
            f"{stats['outliers']} of {stats['repeats']} runs over {SLOW_RUN:g}x "
            f"the p50, up to {stats['max_ms']:.3g} ms"
        )
    runs = stats.get("runs", {})
    if runs.get("count", 1) > 1 and runs["spread"] > UNSTABLE_SPREAD:
        reasons.append(
            f"p50 differs by {runs['spread']:.0%} between {runs['count']} measuring processes"
        )
    return "; ".join(reasons) or None


def stability_note(stats: dict) -> str | None:
    """The one-line warning a report prints under unstable latency statistics, or None."""
    reason = instability(stats)
    if reason is None:
        return None
    return (
        f"Unstable measurement: {reason}. Its mean, CV and tail percentiles describe the "
        "machine's interruptions as much as the artifact; rerun on an idle runner or with "
        "--repeat before trusting them."
    )


# The bench stage's own measurement, which the gate reads; specialisation confirms with it too.
GATE: dict[str, Any] = {
    "max_seconds": 20.0,
    "min_repeats": 200,
    "min_seconds": 2.0,
    "target_ci": 0.02,
}


def measure_latency(
    artifact_dir: Path,
    *,
    batch: int,
    size: int,
    threads: int,
    max_seconds: float = GATE["max_seconds"],
    min_repeats: int = GATE["min_repeats"],
    min_seconds: float = GATE["min_seconds"],
    target_ci: float = GATE["target_ci"],
) -> dict:
    """Run the bench worker on ``artifact_dir``; returns statistics, raw samples and memory."""
    env = dict(os.environ)
    for name in _THREAD_VARIABLES:
        env[name] = str(threads)
    command = [
        sys.executable,
        "-m",
        "tango_ci.bench._worker",
        str(artifact_dir),
        "--batch",
        str(batch),
        "--size",
        str(size),
        "--threads",
        str(threads),
        "--max-seconds",
        str(max_seconds),
        "--min-repeats",
        str(min_repeats),
        "--min-seconds",
        str(min(min_seconds, max_seconds)),
        "--target-ci",
        str(target_ci),
    ]
    try:
        # slow artifacts (untuned TVM at batch 8: ~20 s a run) still get warm-up and 5 runs
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=env,
            timeout=max(900.0, max_seconds * 3 + 120),
        )
    except subprocess.TimeoutExpired:
        raise TangoError(f"measuring {artifact_dir} took longer than 15 minutes") from None
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise TangoError(f"measuring {artifact_dir} failed: {tail[0]}")
    raw = json.loads(result.stdout)
    return {
        **latency_stats(raw["latencies_ms"], batch),
        **{
            k: raw[k]
            for k in (
                "warmup_runs",
                "stop",
                "median_ci95_rel",
                "load_s",
                "rss_before_load_mb",
                "peak_rss_mb",
                "threads",
                "batch",
            )
        },
        "samples_ms": raw["latencies_ms"],
    }


def measure_repeated(artifact_dir: Path, *, repeat: int, **kwargs) -> dict:
    """``repeat`` runs of :func:`measure_latency`, each in a fresh process, combined by
    :func:`combine_runs`."""
    return combine_runs([measure_latency(artifact_dir, **kwargs) for _ in range(max(1, repeat))])


def combine_runs(measured: list[dict]) -> dict:
    """Measurements of one artifact in separate processes, as one.

    Returns the run with the median p50 (its samples too), and under ``runs`` what varies from
    run to run: every run's p50, the median p50, the spread (max - min over the median), the
    CV of the p50s and the median of the runs' own CVs.
    """
    p50s = [m["p50_ms"] for m in measured]
    median = statistics.median(p50s)
    chosen = min(measured, key=lambda m: abs(m["p50_ms"] - median))
    result = chosen | {
        "runs": {
            "count": len(measured),
            "p50_ms": p50s,
            "p95_ms": [m["p95_ms"] for m in measured],
            "repeats": [m["repeats"] for m in measured],
            "median_p50_ms": median,
            "spread": (max(p50s) - min(p50s)) / median if median else 0.0,
            "cv": statistics.pstdev(p50s) / statistics.mean(p50s) if len(p50s) > 1 else 0.0,
            "cv_median": statistics.median(m["cv"] for m in measured),
        }
    }
    reason = instability(result)  # judged again: the runs' spread counts too
    return result | {"unstable": reason is not None, "unstable_reason": reason}


def host_facts(threads: int) -> dict:
    """What a reader needs to trust (or doubt) a timing."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    governor_path = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    governor = governor_path.read_text().strip() if governor_path.exists() else "unreadable"
    from tango_ci.rundir import tool_versions

    return {
        "cpu": cpu,
        "machine": platform.machine(),
        "governor": governor,
        "threads": threads,
        "cores": os.cpu_count(),
        "libraries": tool_versions(),  # every engine's distributions, and the tools
    }
