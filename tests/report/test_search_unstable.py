"""The report's search section says when a candidate was rejected on a latency timed while the
host was busy (p50 within the budget), and then advises to rerun the search on an idle runner,
instead of only 'rejected over budget'."""

from __future__ import annotations

from tango_ci.bench.feasibility import budget_violations
from tango_ci.bench.latency import latency_stats
from tango_ci.report.busy_rejections import busy_rejections
from tango_ci.spec.models import Constraints, TargetSpec
from tango_ci.stages.report import render_markdown

TARGET = TargetSpec(
    name="x86-cpu",
    runner="local-cpu",
    engine="onnxruntime",
    constraints=Constraints(latency_ms=5, latency_percentile="p95"),
)
PERCENTILES = {"x86-cpu": "p95"}


def _rejected(number: int, key: str, samples_ms: list[float]) -> dict:
    """A trial record as the search writes it for a candidate timed as ``samples_ms``."""
    latency = latency_stats(samples_ms, batch=1)
    violations = budget_violations(TARGET, latency=latency, artifact_bytes=2**20, peak_rss_mb=None)
    assert violations, "the candidate must break a budget"
    return {
        "number": number,
        "state": "COMPLETE",
        "feasible": False,
        "architecture_key": key,
        "violations": [dict(v, target=TARGET.name) for v in violations],
    }


# a busy host: most runs at 0.61 ms, 18% over 3x the p50 (up to 9.5 ms)
BUSY = [0.61] * 82 + [9.2, 9.5] * 9
SLOW = [7.0 + 0.01 * i for i in range(100)]  # a steady network over the budget


def _search_section(rejected: list[dict], **search: object) -> str:
    report = {
        "project": "p",
        "run": "r",
        "commit": None,
        "passed": True,
        "targets": {},
        "model": {},
        "search": {
            "trials": len(rejected) + 1,
            "sampler": "tpe",
            "pruner": "median",
            "feasible": 1,
            "infeasible": len(rejected),
            "pruned": 0,
            "best": {"number": 9, "architecture": "resnet-xs", "score": 0.9},
        }
        | search,
        "busy_rejections": busy_rejections(rejected, PERCENTILES),
        "training": {"epochs_run": 2, "best_epoch": 1, "stopped_early": False},
        "training_summary": "validation accuracy 0.9",
        "export": {},
        "reproduce": "tango run projects/p",
    }
    markdown = render_markdown(report, {"search": "search.png"}, {})
    return markdown.split("### Search", 1)[1].split("### Training", 1)[0]


def test_a_rejection_on_a_busy_timing_says_so_and_advises_an_idle_runner() -> None:
    section = _search_section([_rejected(3, "mobilenetv3-s", BUSY), _rejected(4, "resnet-m", SLOW)])
    summary = (
        "2 rejected over budget without training (1 on a latency timed while the host was busy)"
    )
    assert summary in section
    row = next(line for line in section.splitlines() if "mobilenetv3-s" in line)
    assert row.startswith("| 3 | mobilenetv3-s | x86-cpu | p95 9.")
    assert "| p95 5 ms | 0.61 ms |" in row and "18 of 100 runs over 3x the p50" in row
    assert "timed while the host was busy (p50 within the budget" in section
    assert "resnet-m" not in section  # a slow network is only over budget
    advice = [line for line in section.splitlines() if "idle runner" in line]
    assert advice == [
        "> ⚠ 1 rejection(s) rest on a timing made while the host was busy, not on the network: "
        "rerun the search on an idle runner before trusting them (the network the search chose "
        "may not be the best that fits)."
    ]


def test_steady_rejections_say_nothing_more() -> None:
    section = _search_section([_rejected(4, "resnet-m", SLOW)])
    assert "1 rejected over budget without training, 0 pruned" in section
    assert "busy" not in section and "idle" not in section


def test_a_busy_timing_beside_another_broken_budget_is_shown_without_advice() -> None:
    trials = [_rejected(3, "mobilenetv3-s", BUSY)]
    trials[0]["violations"].append(
        {"budget": "memory_mb", "value": 900, "limit": 500, "target": "x86-cpu"}
    )
    section = _search_section(trials)
    assert "other budgets broken too" in section and "idle runner" not in section


def test_text_from_the_run_folder_is_escaped_and_odd_shapes_are_left_out() -> None:
    hostile = _rejected(3, "<img src=x onerror=alert(1)>|\n::error::x", BUSY)
    hostile["violations"][0]["unstable_reason"] = "a | b\n## heading"
    odd = [
        "x",
        {"feasible": False, "violations": "latency"},
        {"feasible": False, "violations": [{"budget": "latency_ms", "value": "9", "limit": 5}]},
        {"feasible": False, "violations": [7, None]},
    ]
    rows = busy_rejections([*odd, hostile], PERCENTILES)
    assert len(rows) == 1
    section = _search_section([hostile])
    assert "<img" not in section and "&lt;img src=x onerror=alert(1)&gt;\\|" in section
    assert "\n::error" not in section and "\n## heading" not in section
    assert busy_rejections("x", PERCENTILES) == busy_rejections(None, PERCENTILES) == []


def test_numbers_no_float_can_hold_are_left_out() -> None:
    """Strict JSON allows an int of 400 digits; formatting it as a float would raise."""
    huge = _rejected(4, "hugenet", BUSY)
    huge["violations"][0] |= {"value": 10**400, "limit": 10**401, "p50_ms": 10**300}
    assert busy_rejections([huge], PERCENTILES) == []
    assert "hugenet" not in _search_section([huge])


def test_a_remeasured_entry_of_another_shape_says_nothing() -> None:
    from tango_ci.stages.report_tables import _num, _remeasured

    assert _remeasured({"first_ms": [], "unstable_first": {}}) == []
    assert _remeasured("x") == _remeasured(None) == []
    assert _num(10**400) == "" and _num(1.5) == "1.5"


def test_trials_cut_short_are_counted_so_the_numbers_add_up() -> None:
    """An interrupted trial (state FAIL) was in the total and in no count."""
    section = _search_section([_rejected(4, "resnet-m", SLOW)])
    assert "2 trials (tpe sampler, median pruner): 1 trained within budget, 1 rejected" in section
    assert "interrupted" not in section
    section = _search_section([_rejected(4, "resnet-m", SLOW)], trials=3, failed=1)
    assert "0 pruned, 1 interrupted or failed (not counted). Chosen: trial 9" in section
    assert "1 trial (tpe" in _search_section([_rejected(4, "resnet-m", SLOW)], trials=1)
