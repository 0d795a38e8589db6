"""The summary and Markdown table of ``benchmarks/supernet.py`` from its runs."""

from __future__ import annotations

TARGETS = [1, 3, 10]  # compute is given for this many targets


def summarise(rows: list, trials: list, untimed: list, fixed: list, compute: dict) -> list[dict]:
    summary = []
    for row, trial, free in zip(rows, trials, untimed, strict=True):
        fitting = [f for f in fixed if f["trained"] and f["latency_ms"] <= row["budget_ms"]]
        best = max(fitting, key=lambda f: f["val"], default=None)
        a_ft, a_plain = row["a_ft"]["test"], row["a_no_ft"]["test"]
        b, d = row["b_scratch"]["test"], best["test"] if best else None
        summary.append(
            {"budget_ms": row["budget_ms"], "subnet": row["chosen"]["architecture"]}
            | {"latency_ms": row["chosen"]["latency_ms"], "a_no_ft": a_plain, "a_ft": a_ft}
            | {"b_scratch": b, "c_trials": trial.get("test"), "c_winner": trial.get("winner")}
            | {"e_trials": free.get("test"), "e_winner": free.get("winner"), "e_s": free.get("s")}
            | {"d_fixed": d, "d_name": best["name"] if best else "none fits"}
            | {"goal_e": None if d is None or "test" not in free else free["test"] >= d - 0.01}
            | {"goal_ft": (d is None or a_ft >= d) and a_ft >= b - 0.01}
            | {"goal_no_ft": (d is None or a_plain >= d) and a_plain >= b - 0.01}
        )
    searched = [t["s"] for t in trials if "s" in t]
    per = compute["per_target_search_s"] = round(sum(searched) / max(len(searched), 1), 1)
    once, each = compute["supernet_train_s"], compute["specialise_per_target_s"]
    compute["targets"] = {
        n: {"supernet_s": round(once + n * each), "search_s": round(n * per)} for n in TARGETS
    }
    return summary


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def markdown(results: dict) -> str:
    s, c, host = results["settings"], results["compute"], results["host"]
    lines = [
        f"# Supernet against per-target search ({results['mode']})\n",
        f"{host['cpu']}, {host['cores']} cores; load average {results['load_before']} before, "
        f"{results['load_after']} after (a shared host slows every timing). Glyphs, 12 classes, "
        f"{s['images_per_class']} images per class at 32 px; {results['test_images']} test "
        f"images (1 point = {results['test_images'] / 100:.1f} images). {s['epochs']} epochs for "
        f"the supernet and every training from scratch, {s['finetune_epochs']} of fine-tuning. "
        f"Supernet: largest subnet {pct(c['largest_val'])}%, smallest {pct(c['smallest_val'])}% "
        f"validation accuracy. Wall clock {results['wall_s'] / 60:.1f} min.\n",
        *(
            [
                "(c) and (e) were run again later with `--trials-only` (same budgets, same data: "
                f"the test split's hash is checked), in {rerun['wall_s'] / 60:.1f} min, load "
                f"average {rerun['host_load']} after.\n"
            ]
            if (rerun := results.get("trials_rerun"))
            else []
        ),
        "Test accuracy (%) per p95 budget (onnxruntime fp32, this host): (a) the specialised "
        "subnet without and with fine-tuning, (b) its architecture from scratch, (c) strategy "
        "trials at equal wall clock (its winner), (d) the fixed family/level within the budget "
        f"with the best validation accuracy, (e) strategy trials with {s['untimed_trials']} "
        f"trials and no time limit (its winner, wall clock of search and training); "
        f"{s['search_epochs']} epochs per trial. Goals: (a) >= (d) and (a) >= (b) - 1 point; "
        "(e) >= (d) - 1 point.\n",
        "| budget ms | (a) subnet, p95 ms | (a) no-ft | (a) ft | (b) scratch | (c) trials "
        "| (d) fixed | (e) trials, untimed | goal (a) ft / no-ft | goal (e) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    yes = {True: "yes", False: "no"}
    for r in results["summary"]:
        lines.append(
            f"| {r['budget_ms']:.3f} | {r['subnet']}, {r['latency_ms']:.3f} | "
            f"{pct(r['a_no_ft'])} | {pct(r['a_ft'])} | {pct(r['b_scratch'])} | "
            f"{pct(r['c_trials'])} ({r['c_winner']}) | {pct(r['d_fixed'])} ({r['d_name']}) | "
            f"{pct(r['e_trials'])} ({r['e_winner']}, {r['e_s'] or 0:.0f} s) | "
            f"{yes[r['goal_ft']]} / {yes[r['goal_no_ft']]} | {yes.get(r['goal_e'], '-')} |"
        )
    lines += [
        f"\nCompute, wall clock: supernet training {c['supernet_train_s']:.0f} s, one "
        f"specialisation {c['specialise_per_target_s']:.0f} s (fine-tuning included); one "
        f"per-target search {c['per_target_search_s']:.0f} s (`search.timeout_s` "
        f"{results['share_s']:.0f} s, then the winner's training). Measured for 3 targets; "
        "1 and 10 are extrapolated from the per-target means.\n",
        "| targets | supernet + specialisations (s) | per-target search (s) | ratio | |",
        "|---|---|---|---|---|",
    ]
    for n, t in c["targets"].items():
        kind = "measured" if int(n) == len(s["budgets_ms"]) else "extrapolated"
        ratio = t["search_s"] / max(t["supernet_s"], 1)
        lines.append(f"| {n} | {t['supernet_s']} | {t['search_s']} | {ratio:.2f}x | {kind} |")
    return "\n".join(lines) + "\n"
