"""Latency models on this host: kernel table and kernel regression against FLOPs-linear and
against the measurement noise floor.

Issue acceptance: "`benchmarks/latency_models.py` on this host, onnxruntime fp32 and int8 and
PyTorch: at least 300 networks drawn from the classification spaces and detection scales
(several resolutions), 30% held out; MAPE, share within ±5% and ±10%, Spearman; side by side
with a FLOPs-linear baseline and with the measurement noise floor (the same networks timed
again in fresh processes: share of re-measurements within ±10% of the first). Goal: within
±10% for at least 95% of held-out networks, or within 2 points of the noise floor if the floor
is lower."

The measurements are exactly what `tango runner profile` takes (same design, same settings,
same files), for `runners/local-cpu.yaml` with its thread count set by --threads, in a work
folder that survives a kill (rerun to continue). The noise floor is the profile's own
re-measurement (`tango_ci.profiling.noise`), here of every held-out network.

    .venv/bin/python benchmarks/latency_models.py              # about an hour on 2 cores
    .venv/bin/python benchmarks/latency_models.py --quick      # a few minutes
    .venv/bin/python benchmarks/latency_models.py --pairs pytorch-fp32   # one engine

A rerun reads measurements whose feature set has changed since (PyTorch eager's) again from
their samples, without timing them again.

Writes benchmarks/results/latency_models.json and .md (latency_models-quick.* with --quick,
latency_models-<pairs>.* with --pairs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import yaml

from tango_ci.bench.latency import host_facts
from tango_ci.latency import Sample, errors
from tango_ci.latency.model import DEPTHS, fit
from tango_ci.latency.records import is_held_out
from tango_ci.profiling import noise
from tango_ci.profiling.fit import fit_pair, usable
from tango_ci.profiling.profile import ProfileOptions, run_profile
from tango_ci.profiling.report import ERROR_HEADER, error_row
from tango_ci.progress import Reporter, Task
from tango_ci.spec import load_runner

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAIRS = (("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("pytorch", "fp32"))


class _Printer(Reporter):
    class _Bar(Task):
        def __init__(self, description: str, total: float | None) -> None:
            self.description, self.total, self.last = description, total, -1.0

        def update(self, completed=None, total=None, **fields) -> None:
            if completed is not None and completed - self.last >= 10:
                self.last = completed
                print(f"{self.description}: {completed:.0f}/{self.total}", flush=True)

    def task(self, description: str, total: float | None = None) -> Task:
        return self._Bar(description, total)

    def log(self, message: str) -> None:
        print(message, flush=True)


def runner_file(work: Path, threads: int) -> Path:
    data = yaml.safe_load((ROOT / "runners" / "local-cpu.yaml").read_text())
    data["hardware"]["threads"] = threads
    path = work / "runners" / "local-cpu.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def evaluate(runner, pair, records: list[dict], host: dict) -> dict:
    networks, blocks, counts = usable(records, host["cpu"], pair[0], runner.threads)
    train = [r for r in networks if not is_held_out(r["id"])]
    held = [r for r in networks if is_held_out(r["id"])]
    fitted = fit_pair(runner, *pair, records, host)
    depth = fitted.model.predictor.parameters().get("depth")
    kept = f"{fitted.model.method}/{depth}"

    def samples(found):
        return [Sample(r["features"], r["p50_ms"]) for r in found]

    measured = np.array([r["p50_ms"] for r in held])
    rows = {}
    for method in ("kernel-table", "kernel-regression", "kernel-boosted", "flops-linear"):
        if method == "kernel-table" and not blocks:
            continue
        for options in [{}] if method == "flops-linear" else [{"depth": d} for d in DEPTHS]:
            label = "/".join([method, *(str(v) for v in options.values())])
            model = fit(method, samples(train), samples(blocks), **options)
            rows[label + (" (kept)" if label == kept else "")] = errors(
                model.predict_many(samples(held)), measured
            )
    # every held-out network again, in the profile's own re-measurement file (resumable)
    floor = noise.floor(noise.remeasure(runner, *pair, held, len(held), _Printer()))
    if floor is None:
        raise SystemExit(f"{pair}: no held-out network could be timed again")
    chosen = fitted.model.metadata["heldout"]
    goal = chosen["within_10"] >= 0.95 or chosen["within_10"] >= floor["within_10"] - 0.02
    kinds = {}
    for r in networks:
        kind = r["sample"]["kind"]
        kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "engine": pair[0],
        "precision": pair[1],
        "method": kept,
        "networks_fitted": len(train),
        "networks_held_out": len(held),
        "blocks": len(blocks),
        "network_kinds": kinds,
        "sizes": sorted({r["sample"]["size"] for r in networks}),
        "p50_range_ms": [float(min(measured)), float(max(measured))],
        "counts": counts,
        "heldout": chosen,
        "methods": rows,
        "noise_floor": floor,
        "goal_met": bool(goal),
    }


def _verdict(pair: dict) -> str:
    """The goal met or missed; not judged when it would be met only by "within 2 points of
    the floor" on a host that cannot time a network twice alike (below the 90% the profile
    asks of a device): that is then no test of the model."""
    floor = pair["noise_floor"]["within_10"]
    if pair["goal_met"] and pair["heldout"]["within_10"] < 0.95 and floor < noise.QUIET:
        return (
            f"Goal not judged: this host timed only {floor:.1%} of the held-out networks again "
            f"within ±10% (a quiet device: {noise.QUIET:.0%} or more)."
        )
    return f"Goal {'met' if pair['goal_met'] else 'missed'}."


def markdown(result: dict) -> str:
    host = result["host"]
    lines = [
        "# Latency models on this host",
        "",
        f"Host: {host['cpu']}, {result['threads']} thread(s); {result['wall_s'] / 60:.0f} min.",
        "Held-out networks (30%, by a hash of the network) were never fitted. Noise floor: "
        "the same held-out networks built and timed again in a fresh process; the share of "
        "re-measurements within ±5% / ±10% of the first.",
        "",
    ]
    for pair in result["pairs"]:
        floor = pair["noise_floor"]
        lines += [
            f"## {pair['engine']} {pair['precision']}",
            "",
            f"{pair['networks_fitted']} networks fitted, {pair['networks_held_out']} held "
            f"out, {pair['blocks']} blocks; kinds {pair['network_kinds']}; input sizes "
            f"{pair['sizes']}; p50 {pair['p50_range_ms'][0]:.3g}-{pair['p50_range_ms'][1]:.3g}"
            f" ms. Kept: **{pair['method']}**. {_verdict(pair)}",
            "",
            *ERROR_HEADER,
            *(error_row(m, e) for m, e in pair["methods"].items()),
            f"| noise floor (re-measured) | {floor['count']} | {floor['mape']:.1%} | "
            f"{floor['within_5']:.1%} | {floor['within_10']:.1%} | | |",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 networks, 20 blocks")
    parser.add_argument("--networks", type=int, default=340)
    parser.add_argument("--blocks", type=int, default=160)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=None, help="measurement folder (resume)")
    parser.add_argument(
        "--pairs",
        nargs="+",
        choices=[f"{e}-{p}" for e, p in PAIRS],
        default=None,
        help="measure and report only these engine-precision pairs (results named after them)",
    )
    args = parser.parse_args()
    networks, blocks = (40, 20) if args.quick else (args.networks, args.blocks)
    pairs_wanted = [pair for pair in PAIRS if args.pairs is None or "-".join(pair) in args.pairs]
    suffix = "-quick" if args.quick else ""
    if args.pairs is not None:
        suffix += "-" + "+".join("-".join(pair) for pair in pairs_wanted)
    work = args.work or RESULTS / f".latency-work{suffix}"
    began = time.monotonic()
    runner = load_runner(runner_file(work, args.threads))
    options = ProfileOptions(
        engines=tuple(sorted({e for e, _ in pairs_wanted})),
        precisions=tuple(sorted({p for _, p in pairs_wanted})),
        blocks=blocks,
        networks=networks,
        time_budget_s=6 * 3600,
        with_yolo=True,
    )
    records = run_profile(runner, options, _Printer())
    host = host_facts(runner.threads)
    pairs = [evaluate(runner, pair, records[pair], host) for pair in pairs_wanted]
    for pair in pairs:  # the JSON says what the Markdown says: met, missed, or not judged
        pair["verdict"] = _verdict(pair)
    result = {
        "host": host,
        "threads": args.threads,
        "wall_s": time.monotonic() - began,
        "pairs": pairs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"latency_models{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"latency_models{suffix}.md").write_text(markdown(result) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
