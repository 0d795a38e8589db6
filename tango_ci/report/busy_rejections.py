"""The report's account of candidates the search rejected on a latency timed while the host was
busy: a budget broken only in the tail of an unstable timing whose p50 is within it (on a busy
runner mobilenetv3-s timed p50 0.61 ms, p95 9.06 ms against a 5 ms p95 budget, even after the
longer second look; the bench later timed the chosen network at p95 0.79 ms). "Rejected over
budget" alone would read as the network being too slow.

``search/trials.json`` may come from a downloaded run folder: a record or violation in another
shape is left out, and every text from it goes through :func:`markdown_cell`.
"""

from __future__ import annotations

import math

from tango_ci.bench.feasibility import busy_host_note
from tango_ci.printable import markdown_cell

#: how many rows the report shows (every trial stays in search/trials.json)
ROWS = 12


def _number(value: object) -> bool:
    """A finite number that ``format`` can show (an int of 400 digits cannot be a float)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _busy(violation: object) -> bool:
    """Whether ``violation`` is a latency budget broken only in the tail of a busy timing."""
    return (
        isinstance(violation, dict)
        and violation.get("budget") == "latency_ms"
        and all(_number(violation.get(k)) for k in ("value", "limit", "p50_ms"))
        and busy_host_note(violation) is not None
    )


def busy_rejections(trials: object, percentiles: dict[str, str]) -> list[dict]:
    """Per architecture and target, the trials rejected on a latency timed while the host was
    busy, as data for ``report.json``: trial numbers, architecture, target, the percentile
    timed, value, limit, p50, why the timing was unstable, and whether that is the trial's only
    broken budget (``rests_on_it``). ``percentiles``: each target's budget percentile."""
    if not isinstance(trials, list):
        return []
    rows: dict[tuple[str, str], dict] = {}
    for record in trials:
        if not isinstance(record, dict) or record.get("feasible") is not False:
            continue
        violations = record.get("violations")
        if not isinstance(violations, list):
            continue
        busy = [v for v in violations if _busy(v)]
        for violation in busy:
            target = str(violation.get("target", ""))
            architecture = str(record.get("architecture_key") or record.get("architecture"))
            row = rows.setdefault(
                (architecture, target),
                {
                    "trials": [],
                    "architecture": architecture,
                    "target": target,
                    "percentile": str(percentiles.get(target, "latency")),
                    "value_ms": violation["value"],
                    "limit_ms": violation["limit"],
                    "p50_ms": violation["p50_ms"],
                    "unstable_reason": str(violation.get("unstable_reason")),
                    "rests_on_it": True,
                },
            )
            row["trials"].append(record.get("number"))
            row["rests_on_it"] = row["rests_on_it"] and len(busy) == len(violations)
    return list(rows.values())


def busy_rejection_lines(rejections: object) -> list[str]:
    """Markdown lines for the search section: a table of the rejections timed while the host
    was busy, and one line of advice when any rejection rests on such a timing alone."""
    if not isinstance(rejections, list) or not rejections:
        return []
    lines = [
        "Rejected on a latency timed while the host was busy (p50 within the budget: the tail "
        "comes from the host, not from the network):",
        "",
        "| trials | architecture | target | timed | budget | p50 | why the timing was unstable |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rejections[:ROWS]:
        percentile = markdown_cell(row.get("percentile"), 20)
        lines.append(
            f"| {markdown_cell(', '.join(map(str, row.get('trials', []))), 80)} | "
            f"{markdown_cell(row.get('architecture'), 80)} | {markdown_cell(row.get('target'), 80)}"
            f" | {percentile} {_ms(row.get('value_ms'))} | {percentile} {_ms(row.get('limit_ms'))}"
            f" | {_ms(row.get('p50_ms'))} | {markdown_cell(row.get('unstable_reason'), 300)}"
            + ("" if row.get("rests_on_it") else "; other budgets broken too")
            + " |"
        )
    if len(rejections) > ROWS:
        lines.append(f"| {len(rejections) - ROWS} more in search/trials.json |||||||")
    lines.append("")
    resting = sum(len(r.get("trials", [])) for r in rejections if r.get("rests_on_it"))
    if resting:
        lines += [
            f"> ⚠ {resting} rejection(s) rest on a timing made while the host was busy, not on "
            "the network: rerun the search on an idle runner before trusting them (the "
            "network the search chose may not be the best that fits).",
            "",
        ]
    return lines


def _ms(value: object) -> str:
    return f"{value:.3g} ms" if _number(value) else "–"
