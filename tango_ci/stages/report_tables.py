"""Report tables of one target's measurements: engine: auto's candidates, its int8 recipe
search, and the end-to-end latency. Values come from run files (downloaded artifacts in CI),
so every cell is made one line and bounded."""

from __future__ import annotations

from tango_ci.printable import markdown_cell


def auto_table(metrics: dict) -> list[str]:
    """For engine: auto, every candidate measured, so the choice can be checked."""
    auto = metrics.get("auto")
    if not auto:
        return []
    lines = [
        "",
        f"`engine: auto` chose **{markdown_cell(auto['chosen'])}**: "
        f"{markdown_cell(auto['reason'], 600)}.",
        *_remeasured(auto.get("remeasured")),
        "",
        f"| candidate | p50 ms | p95 ms | CV | {metrics['quality']['label']} | drop | "
        "peak MiB | size MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in auto["candidates"]:
        name = f"{row['engine']} {row['precision']}" + (" (tuned)" if row["tuned"] else "")
        if isinstance(row.get("modes_timed_ms"), dict):  # PyTorch: its modes, timed here
            name += f" ({markdown_cell(row.get('mode'))}, the fastest of {_modes(row)})"
        mark = "**" if f"{row['engine']}-{row['precision']}" == auto["chosen"] else ""
        lines.append(
            f"| {mark}{name}{mark} | {row['p50_ms']:.3g} | {row['p95_ms']:.3g} | "
            f"{row['cv']:.1%} | {row['quality']:.4f} | {row['drop']:+.4f} | "
            f"{row['peak_rss_mb']:.0f} | {row['artifact_mb']:.3g} |"
        )
    for name, reason in auto.get("failed", {}).items():
        lines.append(f"| {name.replace('-', ' ')} | could not be built: {reason} |||||||")
    for advice in dict.fromkeys(r["advice"] for r in auto["candidates"] if r.get("advice")):
        lines += ["", advice]
    return lines + _recipe_table(auto.get("recipes"))


def _remeasured(again: object) -> list[str]:
    """Why some candidates were timed in more processes, and what their first timing said
    (read from a metrics file that may come from elsewhere: another shape says nothing)."""
    if not (
        isinstance(again, dict)
        and isinstance(again.get("first_ms"), dict)
        and isinstance(again.get("unstable_first"), dict)
    ):
        return []
    first = ", ".join(
        f"{markdown_cell(name)} {_num(ms)} ms" for name, ms in again["first_ms"].items()
    )
    why = "; ".join(
        f"{markdown_cell(name)}: {markdown_cell(reason)}"
        for name, reason in again["unstable_first"].items()
    )
    return [
        "",
        f"A first timing was unstable ({why}), so the close candidates were timed in "
        f"{again['rounds']} more processes each, taking turns; the table shows each one's "
        f"median process. First {markdown_cell(again['percentile'])}: {first}.",
    ]


#: how many recipe rows a report shows (the full table stays in metrics.json)
RECIPE_ROWS = 24


def _recipe_table(recipes: dict | None) -> list[str]:
    """The int8 recipe search: every recipe tried, its latency here, drop and verdict."""
    if not recipes:
        return []
    chosen = next((r["recipe"] for r in recipes["rows"] if r.get("chosen")), None)
    lines = [
        "",
        f"int8 recipes searched on the {recipes['split']} split ({recipes['images']} images, "
        f"{recipes['metric']} {recipes['reference']:.4f} in PyTorch fp32, limit "
        f"{recipes['max_drop']:g}); onnxruntime fp32 here: "
        + (f"{recipes['fp32_ms']:.3g} ms" if recipes.get("fp32_ms") else "not timed")
        + (f"; stopped: {recipes['stopped']}" if recipes.get("stopped") else "")
        + (
            ""
            if recipes.get("timed_on_runner", True)
            else "; timed on this host, which is not the target's runner"
        )
        + ".",
        "",
        f"| recipe | p50 ms | {recipes['metric']} | drop | size MiB | verdict |",
        "|---|---|---|---|---|---|",
    ]
    order = {"accepted": 0, "rejected": 1, "pruned": 2, "timed": 3, "failed": 4}
    rows = sorted(recipes["rows"], key=lambda r: (order.get(r["status"], 5), r.get("p50_ms") or 0))
    for row in rows[:RECIPE_ROWS]:
        mark = "**" if row.get("chosen") else ""
        lines.append(
            f"| {mark}{markdown_cell(row['recipe'])}{mark} | {_num(row.get('p50_ms'))} | "
            f"{_num(row.get('quality'), '.4f')} | {_num(row.get('drop'), '+.4f')} | "
            f"{_num(row.get('size_mb'))} | {row['status']}"
            + (f": {markdown_cell(row['reason'])}" if row.get("reason") else "")
            + " |"
        )
    if len(rows) > RECIPE_ROWS:
        lines.append(f"| {len(rows) - RECIPE_ROWS} more in bench metrics.json |||||")
    if chosen is None:
        lines += ["", "No int8 recipe kept the drop within the limit on the validation split."]
    return lines


def _num(value, spec: str = ".3g") -> str:
    """``value`` formatted; empty for what is not a number a float can hold (10**400)."""
    if not isinstance(value, int | float):
        return ""
    try:
        return format(value, spec)
    except OverflowError:
        return ""


def end_to_end_lines(e2e: dict | None) -> list[str]:
    """Pre-processing, network and post-processing per image, as a device runs them."""
    if not isinstance(e2e, dict) or not isinstance(e2e.get("p95_ms"), int | float):
        return []
    settings = e2e.get("settings", {})
    thresholds = settings.get("thresholds") if isinstance(settings, dict) else None
    at = (
        " at the deployment thresholds "
        + ", ".join(f"{markdown_cell(k)} {_num(v, 'g')}" for k, v in thresholds.items())
        if isinstance(thresholds, dict)
        else ""
    )
    return [
        "",
        f"End to end per image{at}: pre-processing {_num(e2e.get('pre_ms'))} ms, network "
        f"{_num(e2e.get('network_ms'))} ms, post-processing {_num(e2e.get('post_ms'))} ms; "
        f"total p50 {_num(e2e.get('p50_ms'))} ms, p95 {_num(e2e['p95_ms'])} ms "
        f"({_num(e2e.get('images'), 'g')} images timed in the bench process).",
    ]


def _modes(row: dict) -> str:
    """``eager 1.2 ms, compile 0.9 ms (ready in 31 s); torchscript skipped: why``."""
    ready = _mapping(row.get("modes_ready_s"))
    timed = [
        f"{markdown_cell(mode)} {_num(ms)} ms"
        + (f" (ready in {_num(ready[mode])} s)" if mode == "compile" and mode in ready else "")
        for mode, ms in row["modes_timed_ms"].items()
    ]
    skipped = _mapping(row.get("modes_skipped"))
    return ", ".join(
        timed
        + [f"{markdown_cell(m)} skipped: {markdown_cell(why, 200)}" for m, why in skipped.items()]
    )


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}
