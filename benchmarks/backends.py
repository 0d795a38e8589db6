"""Every backend and precision available on this host, side by side, in one run.

resnet18 and densenet121 (torchvision's, untrained: latency does not depend on the weights),
at 224x224 and 64x64, batch 1 and 8: PyTorch eager and TorchScript, onnxruntime fp32 and int8,
TVM fp32 (untuned, and tuned when --tvm-trials > 0). With ``--runner gpu-server`` on a CUDA
host: PyTorch fp32/fp16/bf16 and onnxruntime fp32/fp16 on the GPU instead. Each artifact is
timed by the bench worker in its own process. The table gives medians, the coefficient of
variation and the speed-up against PyTorch eager at the same model, size and batch. A variant
whose engine cannot load here is listed as skipped, with the reason.

    python benchmarks/backends.py [--seconds 6] [--processes 1] [--tvm-trials 0] [--runner R]

Writes benchmarks/results/backends.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    ROOT,
    build,
    calibration_images,
    cosine,
    outputs,
    prepare,
    time_artifact,
)

from tango_ci.bench.latency import host_facts
from tango_ci.compile import check_request
from tango_ci.exceptions import TangoError
from tango_ci.rundir import tool_versions
from tango_ci.spec import TargetSpec, load_runner

MODELS = {"resnet18": ("resnet", "l"), "densenet121": ("densenet", "xl")}
# (label, engine, precision, options, built per batch?)
VARIANTS = [
    ("PyTorch eager", "pytorch", "fp32", {"mode": "eager"}, False),
    ("PyTorch TorchScript", "pytorch", "fp32", {"mode": "torchscript"}, True),
    ("onnxruntime fp32", "onnxruntime", "fp32", {}, False),
    ("onnxruntime int8", "onnxruntime", "int8", {}, False),
    ("TVM fp32 untuned", "tvm", "fp32", {}, True),
]
GPU_VARIANTS = [
    ("PyTorch eager", "pytorch", "fp32", {"mode": "eager"}, False),
    ("PyTorch TorchScript", "pytorch", "fp32", {"mode": "torchscript"}, True),
    ("PyTorch eager fp16", "pytorch", "fp16", {"mode": "eager"}, False),
    ("PyTorch eager bf16", "pytorch", "bf16", {"mode": "eager"}, False),
    ("onnxruntime fp32", "onnxruntime", "fp32", {}, False),
    ("onnxruntime fp16", "onnxruntime", "fp16", {}, False),
]


def usable(engine: str, precision: str, runner) -> str | None:
    """Why this variant cannot run here, or None."""
    import importlib.util

    try:
        check_request(
            TargetSpec(name="probe", runner=runner.name, engine=engine, precision=precision), runner
        )
    except TangoError as error:
        return str(error)
    package = {"pytorch": "torch"}.get(engine, engine)
    if importlib.util.find_spec(package) is None:
        return f"{package} is not installed"
    if engine == "onnxruntime" and runner.hardware.accelerator.kind == "nvidia-gpu":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return "onnxruntime has no CUDAExecutionProvider here"
    return None


def run_case(model: str, size: int, batches: list[int], args) -> list[dict]:
    family, level = MODELS[model]
    info = {
        "family": family,
        "level": level,
        "classes": [str(i) for i in range(1000)],
        "image_size": size,
    }
    calibration = calibration_images(size, 16)
    runner = args.runner_spec
    gpu = runner.hardware.accelerator.kind == "nvidia-gpu"
    variants = []
    for variant in GPU_VARIANTS if gpu else VARIANTS:
        reason = usable(variant[1], variant[2], runner)
        if reason:
            args.skipped[variant[0]] = reason
        else:
            variants.append(variant)
    if args.tvm_trials:
        variants.append(
            (
                f"TVM fp32 tuned ({args.tvm_trials} trials)",
                "tvm",
                "fp32",
                {"tuning_trials": args.tvm_trials, "tuning_cache": ROOT / "benchmarks" / ".tuning"},
                True,
            )
        )
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
                    shared[key], _ = build(
                        work / key.replace(" ", "_"),
                        onnx_path,
                        model_dir,
                        engine,
                        precision,
                        batch,
                        calibration,
                        options,
                        runner,
                    )
                artifact = shared[key]
                produced[label] = outputs(artifact, probe, args.threads)
                timing = time_artifact(
                    artifact,
                    batch=batch,
                    size=size,
                    threads=args.threads,
                    seconds=args.seconds,
                    processes=args.processes,
                )
                print(
                    f"  {model:<12} {size:>3} b{batch} {label:<28} "
                    f"{timing['median_ms']:9.3f} ms  cv {timing['cv']:.1%}",
                    flush=True,
                )
                rows.append(
                    {
                        "model": model,
                        "size": size,
                        "batch": batch,
                        "variant": label,
                        "engine": engine,
                        "precision": precision,
                        **timing,
                    }
                )
            eager = next(
                r
                for r in rows
                if r["batch"] == batch
                and r["size"] == size
                and r["model"] == model
                and r["variant"] == "PyTorch eager"
            )
            for row in rows:
                if row["batch"] == batch and row["size"] == size and row["model"] == model:
                    row["speedup_vs_eager"] = eager["median_ms"] / row["median_ms"]
                    row["cosine_vs_eager"] = cosine(
                        produced[row["variant"]], produced["PyTorch eager"]
                    )
    return rows


def markdown(results: dict) -> str:
    host = results["host"]
    device = results.get("gpu") or f"{host['cpu']}, {host['threads']} threads"
    lines = [
        f"{device}; median latency of one batch (ms), "
        "CV, and speed-up against PyTorch eager at the same model, size and batch.",
        "",
        "| model | input | batch | variant | median ms | CV | vs eager | cosine |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['model']} | {r['size']} | {r['batch']} | {r['variant']} | "
            f"{r['median_ms']:.3f} | {r['cv']:.1%} | {r['speedup_vs_eager']:.2f}x | "
            f"{r['cosine_vs_eager']:.4f} |"
        )
    for label, reason in results.get("skipped", {}).items():
        lines.append(f"\nSkipped: {label}: {reason}")
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
    parser.add_argument(
        "--runner",
        default="local-cpu",
        help="runners/<RUNNER>.yaml: the device the variants are built for",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    args.runner_spec = load_runner(ROOT / "runners" / f"{args.runner}.yaml")
    args.skipped = {}
    settings = {k: v for k, v in vars(args).items() if k not in ("runner_spec", "skipped")}
    results = {
        "benchmark": "backends",
        "host": host_facts(args.threads),
        "tools": tool_versions(),
        "settings": settings | {"out": str(args.out)},
        "skipped": args.skipped,
        "rows": [],
    }
    if args.runner_spec.hardware.accelerator.kind == "nvidia-gpu":
        import torch

        results["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    stem = "backends" if args.runner == "local-cpu" else f"backends-{args.runner}"
    args.out.mkdir(parents=True, exist_ok=True)
    for model in args.models:  # written after every case: a cut-off run keeps what it measured
        for size in args.sizes:
            results["rows"] += run_case(model, size, args.batches, args)
            results["complete"] = model == args.models[-1] and size == args.sizes[-1]
            (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
            table = markdown(results)
            (args.out / f"{stem}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
