"""Measuring process: loads one artifact, runs it, prints JSON. Nothing else shares its memory.

Run by :func:`tango_ci.bench.latency.measure_latency`, which sets the thread environment first.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time


def _rss_mb() -> float:
    """Peak resident memory of this process since exec.

    VmHWM belongs to the process image; getrusage's maxrss would still count the memory of
    the (large) parent this process was forked from.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _median_ci_halfwidth(samples: list[float]) -> float:
    """Relative half-width of a 95% confidence interval of the median (order statistics)."""
    ordered = sorted(samples)
    n = len(ordered)
    spread = 1.96 * (n**0.5) / 2
    low, high = max(0, int(n / 2 - spread)), min(n - 1, int(n / 2 + spread + 1))
    median = ordered[n // 2]
    return (ordered[high] - ordered[low]) / 2 / median if median > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("artifact")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, default=20.0)
    parser.add_argument("--min-repeats", type=int, default=200)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--max-repeats", type=int, default=5000)
    parser.add_argument("--target-ci", type=float, default=0.02)
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cpus[: max(1, args.threads)])
    import numpy as np

    from tango_ci.compile import load_artifact

    rss_before = _rss_mb()
    began = time.perf_counter()
    predictor = load_artifact(__import__("pathlib").Path(args.artifact), threads=args.threads)
    load_s = time.perf_counter() - began
    batch = (
        np.random.default_rng(0)
        .standard_normal((args.batch, 3, args.size, args.size))
        .astype(np.float32)
    )

    # warm-up until the median of a window stops moving (allocators, caches, JIT)
    warmup: list[float] = []
    deadline = time.perf_counter() + max(1.0, args.max_seconds * 0.2)
    previous = None
    while time.perf_counter() < deadline and len(warmup) < 200:
        window = []
        for _ in range(5):
            start = time.perf_counter()
            predictor.run(batch)
            window.append((time.perf_counter() - start) * 1000)
            if time.perf_counter() > deadline:  # slow models: one run may take seconds
                break
        warmup += window
        if len(window) < 5:
            break
        current = sorted(window)[2]
        if previous is not None and abs(current - previous) / previous < 0.05:
            break
        previous = current

    samples: list[float] = []
    began_measuring = time.perf_counter()
    deadline = began_measuring + args.max_seconds
    stop = "max_repeats"
    while len(samples) < args.max_repeats:
        for _ in range(10):
            start = time.perf_counter()
            predictor.run(batch)
            samples.append((time.perf_counter() - start) * 1000)
            if time.perf_counter() > deadline and len(samples) >= 3:
                break
        enough = (
            len(samples) >= args.min_repeats
            and time.perf_counter() - began_measuring >= args.min_seconds
        )
        if enough and _median_ci_halfwidth(samples) <= args.target_ci:
            stop = "ci"
            break
        if time.perf_counter() > deadline:
            stop = "time_cap"
            break
    json.dump(
        {
            "latencies_ms": samples,
            "warmup_runs": len(warmup),
            "stop": stop,
            "median_ci95_rel": _median_ci_halfwidth(samples),
            "load_s": load_s,
            "rss_before_load_mb": rss_before,
            "peak_rss_mb": _rss_mb(),
            "threads": args.threads,
            "batch": args.batch,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
