"""Latency statistics judge their own stability; the report prints the judgement."""

from __future__ import annotations

import numpy as np

from tango_ci.bench.latency import instability, latency_stats, stability_note


def _quiet(n: int = 2000) -> list[float]:
    return list(np.random.default_rng(0).normal(0.09, 0.004, n))


def test_a_quiet_measurement_is_stable() -> None:
    stats = latency_stats(_quiet(), batch=1)
    assert stats["unstable"] is False and stats["unstable_reason"] is None
    assert stats["outliers"] == 0
    assert stability_note(stats) is None


def test_a_few_interrupted_runs_make_it_unstable() -> None:
    # the held-out case: p50 0.09 ms, a handful of runs near 33 ms, a CV of several 100%
    stats = latency_stats([*_quiet(), 33.0, 12.0, 5.0], batch=1)
    assert stats["cv"] > 2 and stats["max_ms"] == 33.0 and stats["outliers"] == 3
    assert stats["unstable"] is True
    assert stats["unstable_reason"].startswith(f"CV {stats['cv']:.0%} (over 20%)")
    assert "3 of 2003 runs over 3x the p50, up to 33 ms" in stats["unstable_reason"]
    note = stability_note(stats)
    assert note.startswith("Unstable measurement: CV ") and "\n" not in note


def test_a_heavy_tail_is_unstable_even_with_a_modest_cv() -> None:
    samples = [1.0] * 985 + [2.5] * 15  # 1.5% slow runs: the p99 among them, CV 18%
    stats = latency_stats(samples, batch=1)
    assert stats["cv"] < 0.2
    assert stats["unstable_reason"] == "p99 2.5x the p50 (over 2x)"


def test_older_statistics_without_the_new_fields_are_judged_too() -> None:
    old = {"p50_ms": 0.09, "p99_ms": 0.1, "cv": 3.0, "repeats": 5000}
    assert instability(old) == "CV 300% (over 20%)"
    assert instability(old | {"cv": 0.05}) is None


def test_run_to_run_spread_counts() -> None:
    stats = latency_stats(_quiet(), batch=1) | {"runs": {"count": 3, "spread": 0.35}}
    assert instability(stats) == "p50 differs by 35% between 3 measuring processes"
