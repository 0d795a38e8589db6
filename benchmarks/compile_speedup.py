"""PyTorch eager against onnxruntime fp32 and int8, batch 1, on this host, in one run.

Models: torchvision's resnet18 at 224x224, and the example project's model (its latest trained
run when there is one, else the same architecture untrained: latency does not depend on the
weights). Every artifact is timed by the bench worker in its own process, REPEATS times; the
table gives the median of the per-process medians, the spread between processes, and the
speed-up against PyTorch eager.

    python benchmarks/compile_speedup.py [--repeats 3] [--seconds 10] [--threads 2]

Writes benchmarks/results/compile_speedup.json and .md.
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
from tango_ci.contracts import TrainedModel
from tango_ci.data.synth import SHAPES
from tango_ci.models import build_model, count_parameters
from tango_ci.rundir import read_record, tool_versions

VARIANTS = [
    ("pytorch", "fp32", "PyTorch eager"),
    ("onnxruntime", "fp32", "onnxruntime fp32"),
    ("onnxruntime", "int8", "onnxruntime int8"),
]


def example_model() -> tuple[str, Path | None, dict]:
    """The example's latest trained network, or its architecture untrained."""
    trained = ROOT / "runs" / "example-shapes" / "latest" / "train"
    if (trained / "model.json").exists() and (trained / "best.pt").exists():
        model = read_record(TrainedModel, trained)
        info = {
            "family": model.family,
            "level": model.shape["level"],
            "classes": list(model.classes),
            "image_size": model.image_size,
        }
        return f"example-shapes ({model.name}, trained)", trained, info
    info = {"family": "resnet", "level": "s", "classes": list(SHAPES), "image_size": 32}
    return "example-shapes (resnet-s, untrained)", None, info


def bench_model(name: str, info: dict, weights: Path | None, args) -> dict:
    size = info["image_size"]
    calibration = calibration_images(size)
    rows, produced = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir, onnx_path = prepare(work, info, weights)
        for engine, precision, label in VARIANTS:
            artifact, built = build(work, onnx_path, model_dir, engine, precision, 1, calibration)
            produced[label] = outputs(artifact, calibration[:8], args.threads)
            timing = time_artifact(
                artifact,
                batch=1,
                size=size,
                threads=args.threads,
                seconds=args.seconds,
                processes=args.repeats,
            )
            print(f"  {name:<40} {label:<18} {timing['median_ms']:.3f} ms", flush=True)
            rows.append(
                {
                    "variant": label,
                    "engine": engine,
                    "precision": precision,
                    "artifact_bytes": built["bytes"],
                    **timing,
                    "cv_median": timing["cv"],
                }
            )
    eager = rows[0]["median_ms"]
    for row in rows:
        row["speedup_vs_eager"] = eager / row["median_ms"]
        row["cosine_vs_eager"] = cosine(produced[row["variant"]], produced["PyTorch eager"])
    return {
        "model": name,
        "input": f"1x3x{size}x{size}",
        "parameters": count_parameters(
            build_model(info["family"], info["level"], len(info["classes"]))
        ),
        "rows": rows,
    }


def markdown(results: dict) -> str:
    host = results["host"]
    lines = [
        f"Batch 1, {host['threads']} threads, {host['cpu']}; median of {results['repeats']} "
        "processes' medians (ms); speed-up against PyTorch eager.",
        "",
        "| model | input | variant | median ms | speed-up | spread | CV | cosine |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model in results["models"]:
        for row in model["rows"]:
            lines.append(
                f"| {model['model']} | {model['input']} | {row['variant']} | "
                f"{row['median_ms']:.3f} | {row['speedup_vs_eager']:.2f}x | "
                f"{row['spread']:.1%} | {row['cv_median']:.1%} | "
                f"{row['cosine_vs_eager']:.5f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="measuring processes per variant")
    parser.add_argument("--seconds", type=float, default=10.0, help="time cap per process")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    resnet18 = {
        "family": "resnet",
        "level": "l",
        "classes": [str(i) for i in range(1000)],
        "image_size": 224,
    }
    name, weights, info = example_model()
    results = {
        "benchmark": "compile_speedup",
        "repeats": args.repeats,
        "host": host_facts(args.threads),
        "tools": tool_versions(),
        "models": [
            bench_model("resnet18", resnet18, None, args),
            bench_model(name, info, weights, args),
        ],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compile_speedup.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "compile_speedup.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
