"""Detection backends side by side: PyTorch eager, onnxruntime fp32 and int8, TVM (untuned),
for yolov8n and yolo11n (built from their YAML, untrained: latency does not depend on the
weights) at 320 and 640, batch 1, in one run, plus the shared post-processing time.

    python benchmarks/detection.py [--seconds 6] [--processes 1]

Writes benchmarks/results/detection.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, build, cosine, outputs, time_artifact

from tango_ci.bench.latency import host_facts
from tango_ci.contracts import TrainedModel
from tango_ci.data.synth_detection import detection_image
from tango_ci.detection.models import model_yaml, write_model_yaml
from tango_ci.detection.postprocess import Thresholds, decode
from tango_ci.detection.search_space import export_yolo, preprocess_detection
from tango_ci.detection.ultralytics_env import prepare_environment
from tango_ci.detection.weights import ultralytics_module
from tango_ci.exceptions import TangoError
from tango_ci.rundir import tool_versions, write_record

MODELS = {"yolov8n": ("yolov8", "n"), "yolo11n": ("yolo11", "n")}
VARIANTS = [
    ("PyTorch eager", "pytorch", "fp32"),
    ("onnxruntime fp32", "onnxruntime", "fp32"),
    ("onnxruntime int8", "onnxruntime", "int8"),
    ("TVM fp32 untuned", "tvm", "fp32"),
]
CLASSES = ("circle", "square", "triangle")


def images(size: int, count: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return preprocess_detection(
        np.stack([np.asarray(detection_image(rng, CLASSES, size, 4)[0]) for _ in range(count)])
    )


def run_case(model: str, size: int, args) -> list[dict]:
    family, scale = MODELS[model]
    calibration = images(size, 16)
    rows, produced = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = write_model_yaml(work / "model.yaml", model_yaml(family, scale, classes=80))
        model_dir = work / "model"
        model_dir.mkdir()
        ultralytics_module().YOLO(str(config), task="detect").save(str(model_dir / "best.pt"))
        write_record(
            model_dir,
            TrainedModel(
                task="detection",
                family=family,
                name=f"{family}{scale}",
                architecture=f"{family}{scale}",
                image_size=size,
                classes=tuple(str(i) for i in range(80)),
                shape={"scale": scale, "depth": 1.0, "width": 1.0},
            ),
        )
        onnx_path = export_yolo(
            model_dir / "best.pt", work / "model.onnx", size, opset=17, simplify=True
        )
        for label, engine, precision in VARIANTS:
            try:
                artifact, _ = build(
                    work / label.replace(" ", "_"),
                    onnx_path,
                    model_dir,
                    engine,
                    precision,
                    1,
                    calibration,
                )
            except TangoError as exc:  # reported in the table, not hidden
                print(f"  {model:<8} {size:>3} {label:<20} cannot build: {exc.message}")
                rows.append(
                    {
                        "model": model,
                        "size": size,
                        "batch": 1,
                        "variant": label,
                        "error": exc.message,
                    }
                )
                continue
            produced[label] = outputs(artifact, calibration[:1], args.threads)
            timing = time_artifact(
                artifact,
                batch=1,
                size=size,
                threads=args.threads,
                seconds=args.seconds,
                processes=args.processes,
            )
            print(
                f"  {model:<8} {size:>3} {label:<20} {timing['median_ms']:9.2f} ms "
                f"cv {timing['cv']:.1%}",
                flush=True,
            )
            rows.append({"model": model, "size": size, "batch": 1, "variant": label, **timing})
    raw = produced["onnxruntime fp32"]
    began = time.perf_counter()
    for _ in range(20):
        decode(raw, Thresholds(conf=0.25))
    post_ms = (time.perf_counter() - began) / 20 * 1000
    eager = rows[0]["median_ms"]
    for row in rows:
        if "error" in row:
            continue
        row["speedup_vs_eager"] = eager / row["median_ms"]
        row["cosine_vs_eager"] = cosine(produced[row["variant"]], produced["PyTorch eager"])
        row["postprocess_ms"] = post_ms
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", nargs="+", type=int, default=[320, 640])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as config:
        prepare_environment(Path(config))
        rows = [r for model in MODELS for size in args.sizes for r in run_case(model, size, args)]
    host = host_facts(args.threads)
    lines = [
        f"{host['cpu']}, {host['threads']} threads, batch 1; network latency (ms, median), "
        "CV, speed-up against PyTorch eager; post-processing (decode + NMS at conf 0.25) "
        "is shared by all and timed apart.",
        "",
        "| model | input | variant | median ms | CV | vs eager | cosine | post-proc ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['size']} | {r['variant']} | {r['median_ms']:.2f} | "
        f"{r['cv']:.1%} | {r['speedup_vs_eager']:.2f}x | {r['cosine_vs_eager']:.4f} | "
        f"{r['postprocess_ms']:.2f} |"
        if "error" not in r
        else f"| {r['model']} | {r['size']} | {r['variant']} | cannot build: {r['error']} ||||"
        for r in rows
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detection.json").write_text(
        json.dumps(
            {
                "benchmark": "detection",
                "host": host,
                "tools": tool_versions(),
                "settings": vars(args) | {"out": str(args.out)},
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    (args.out / "detection.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
