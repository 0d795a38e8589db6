"""Every backend and precision available on this host, side by side, in one run.

resnet18 and densenet121 (torchvision's, untrained: latency does not depend on the weights),
at 224x224 and 64x64, batch 1 and 8: PyTorch eager and TorchScript, onnxruntime fp32 and int8,
TVM fp32 (untuned, and tuned when --tvm-trials > 0). Each artifact is timed by the bench worker
in its own process. The table gives medians, the coefficient of variation and the speed-up
against PyTorch eager at the same model, size and batch.

    python benchmarks/backends.py [--seconds 6] [--processes 1] [--tvm-trials 0]

Writes benchmarks/results/backends.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (ROOT, build, calibration_images, cosine, outputs, prepare,  # noqa: E402
                     time_artifact)

from tango_ci.bench.latency import host_facts  # noqa: E402
from tango_ci.rundir import tool_versions  # noqa: E402

MODELS = {"resnet18": ("resnet", "l"), "densenet121": ("densenet", "xl")}
# (label, engine, precision, options, built per batch?)
VARIANTS = [
    ("PyTorch eager", "pytorch", "fp32", {"mode": "eager"}, False),
    ("PyTorch TorchScript", "pytorch", "fp32", {"mode": "torchscript"}, True),
    ("onnxruntime fp32", "onnxruntime", "fp32", {}, False),
    ("onnxruntime int8", "onnxruntime", "int8", {}, False),
    ("TVM fp32 untuned", "tvm", "fp32", {}, True),
]


def run_case(model: str, size: int, batches: list[int], args) -> list[dict]:
    family, level = MODELS[model]
    info = {"family": family, "level": level, "classes": [str(i) for i in range(1000)],
            "image_size": size}
    calibration = calibration_images(size, 16)
    variants = list(VARIANTS)
    if args.tvm_trials:
        variants.append((f"TVM fp32 tuned ({args.tvm_trials} trials)", "tvm", "fp32",
                         {"tvm_trials": args.tvm_trials,
                          "tuning_cache": ROOT / "benchmarks" / ".tuning"}, True))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir, onnx_path = prepare(work, info)
        shared: dict[str, Path] = {}
        for batch in batches:
            probe = calibration[:batch] if len(calibration) >= batch else calibration
            produced = {}
            for label, engine, precision, options, per_batch in variants:
                key = f"{label}-{batch if per_batch else 'any'}"
                if key not in shared:
                    shared[key], _ = build(work / key.replace(" ", "_"), onnx_path, model_dir,
                                           engine, precision, batch, calibration, options)
                artifact = shared[key]
                produced[label] = outputs(artifact, probe, args.threads)
                timing = time_artifact(artifact, batch=batch, size=size, threads=args.threads,
                                       seconds=args.seconds, processes=args.processes)
                print(f"  {model:<12} {size:>3} b{batch} {label:<28} "
                      f"{timing['median_ms']:9.3f} ms  cv {timing['cv']:.1%}", flush=True)
                rows.append({"model": model, "size": size, "batch": batch, "variant": label,
                             "engine": engine, "precision": precision, **timing})
            eager = next(r for r in rows if r["batch"] == batch and r["size"] == size
                         and r["model"] == model and r["variant"] == "PyTorch eager")
            for row in rows:
                if row["batch"] == batch and row["size"] == size and row["model"] == model:
                    row["speedup_vs_eager"] = eager["median_ms"] / row["median_ms"]
                    row["cosine_vs_eager"] = cosine(produced[row["variant"]],
                                                    produced["PyTorch eager"])
    return rows


def markdown(results: dict) -> str:
    host = results["host"]
    lines = [f"{host['cpu']}, {host['threads']} threads; median latency of one batch (ms), "
             "CV, and speed-up against PyTorch eager at the same model, size and batch.", "",
             "| model | input | batch | variant | median ms | CV | vs eager | cosine |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        lines.append(f"| {r['model']} | {r['size']} | {r['batch']} | {r['variant']} | "
                     f"{r['median_ms']:.3f} | {r['cv']:.1%} | {r['speedup_vs_eager']:.2f}x | "
                     f"{r['cosine_vs_eager']:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="time cap per process")
    parser.add_argument("--processes", type=int, default=1, help="measuring processes each")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tvm-trials", type=int, default=0, help="also tune TVM (slow)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[224, 64])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    rows = [row for model in args.models for size in args.sizes
            for row in run_case(model, size, args.batches, args)]
    results = {"benchmark": "backends", "host": host_facts(args.threads),
               "tools": tool_versions(), "settings": vars(args) | {"out": str(args.out)},
               "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "backends.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "backends.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
