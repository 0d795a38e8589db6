"""The baselines table: winner first and marked, one latency column per target, and which
budget a baseline breaks."""

from __future__ import annotations

from tango_ci.report.baselines import baselines_table

WINNER = {
    "name": "resnet-s",
    "parameters": 120_000,
    "val_accuracy": 0.91,
    "latency_ms": {"cpu": 1.5, "pi": 9.0},
    "fits_budgets": True,
}
BASELINES = {
    "percentiles": {"cpu": "p95", "pi": "p99"},
    "baselines": [
        {
            "name": "densenet-m",
            "parameters": 900_000,
            "val_accuracy": 0.93,
            "latency_ms": {"cpu": 4.0, "pi": 31.0},
            "fits_budgets": False,
            "violations": [{"budget": "latency_ms", "target": "pi"}],
        }
    ],
}


def test_the_winner_comes_first_beside_each_baseline() -> None:
    lines = baselines_table(BASELINES, WINNER)
    header = lines.index(
        "| network | parameters | validation accuracy | cpu p95 ms | pi p99 ms | fits budgets |"
    )
    assert lines[header + 1] == "|---|---|---|---|---|---|"
    assert lines[header + 2] == "| **resnet-s** (winner) | 120,000 | 0.9100 | 1.5 | 9 | yes |"
    assert lines[header + 3] == (
        "| densenet-m | 900,000 | 0.9300 | 4 | 31 | no (latency_ms on pi) |"
    )
