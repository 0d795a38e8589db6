"""engine: auto's int8 recipe search against fixed recipes, onnxruntime's defaults and Olive.

Networks: torchvision's resnet18, densenet121 and mobilenet_v3_large at 224x224, trained here
for a few epochs (mostly at 112 px, to be affordable on a CPU) on a synthetic 10-class glyph set (nothing downloaded; weights cached in
benchmarks/results/.auto-work/). For each network, side by side in one run:

- PyTorch eager fp32 and onnxruntime fp32;
- the project's fixed int8 recipe (first convolution and classifier in float);
- onnxruntime's default static quantisation (``quantize_static`` with its defaults: QDQ,
  S8S8, per-tensor, MinMax) and its CPU recommendation (U8S8 per-channel, QOperator);
- ``engine: auto``: the recipe search of :mod:`tango_ci.bench.optimise`, scored on the
  validation split with a limit of 1 point of accuracy;
- Olive (``olive-ai``), run in its own virtualenv when ``--olive-python`` names one (it cannot
  share the project's: see benchmarks/README.md); otherwise the table says it did not run.

Accuracy is top-1 on the test split (never seen by the search); latency is batch 1 on
``--threads`` threads, each artifact timed by the bench worker in REPEATS fresh processes
(median of the per-process medians).

    python benchmarks/auto_optimise.py [--models resnet18,densenet121,mobilenetv3]
        [--epochs 7] [--repeats 3] [--seconds 5] [--budget 600] [--olive-python PATH]

Writes benchmarks/results/auto_optimise.json and .md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _auto_setup import (
    CLASSES,
    GOAL_DROP,
    MODELS,
    SIZE,
    SPLITS,
    WORK,
    Log,
    dataset,
    olive,
    ort_static,
    train,
)
from _common import ROOT, RUNNER, build, prepare, time_artifact

from tango_ci.bench.accuracy import predict_labels
from tango_ci.bench.latency import host_facts
from tango_ci.bench.optimise import SearchProblem, build_recipe, search_recipes
from tango_ci.compile import load_artifact
from tango_ci.compile.recipes import cpu_features
from tango_ci.data.dataset import preprocess
from tango_ci.rundir import tool_versions
from tango_ci.spec import TargetSpec

GOAL_SPEEDUP = 5.0
BUILT = "built.json"  # a model's artifacts and search notes, for --retime


def bench_model(name: str, data: dict, args) -> dict:
    print(f"== {name}", flush=True)
    work = WORK / name / "run"
    if args.retime:  # the artifacts of the last full run, measured again
        built = json.loads((work / BUILT).read_text())
        artifacts = {label: Path(path) for label, path in built["artifacts"].items()}
        return measure(name, artifacts, built["notes"], data, args)
    artifacts, notes = build_all(name, data, args)
    (work / BUILT).write_text(
        json.dumps({"artifacts": {k: str(v) for k, v in artifacts.items()}, "notes": notes})
    )
    return measure(name, artifacts, notes, data, args)


def build_all(name: str, data: dict, args) -> tuple[dict[str, Path], dict[str, dict]]:
    """Every artifact of the comparison, built (and searched) here."""
    family, level = MODELS[name]
    weights = train(name, data, args.epochs)
    work = WORK / name / "run"
    shutil.rmtree(work, ignore_errors=True)
    info = {
        "family": family,
        "level": level,
        "classes": [str(i) for i in range(CLASSES)],
        "image_size": SIZE,
    }
    model_dir, onnx_path = prepare(work, info, weights)
    train_images = data["train"][0]
    calibration = preprocess(
        train_images[np.random.default_rng(0).permutation(len(train_images))[:128]]
    )
    artifacts: dict[str, Path] = {}
    notes: dict[str, dict] = {}
    for engine, precision, label in (
        ("pytorch", "fp32", "PyTorch eager fp32"),
        ("onnxruntime", "fp32", "onnxruntime fp32"),
        ("onnxruntime", "int8", "project fixed int8"),
    ):
        artifacts[label], _ = build(work, onnx_path, model_dir, engine, precision, 1, calibration)
    artifacts["onnxruntime static, defaults"] = ort_static(
        onnx_path, calibration, work / "ort-default", False
    )
    artifacts["onnxruntime static, U8S8 per-channel QOperator"] = ort_static(
        onnx_path, calibration, work / "ort-recommended", True
    )
    val_images, val_labels = data["val"]

    def accuracy(predictor, images=val_images, labels=val_labels) -> float:
        return float((predict_labels(predictor, images, 16) == labels).mean())

    reference = load_artifact(artifacts["PyTorch eager fp32"], threads=args.threads)
    target = TargetSpec(name="auto", runner=RUNNER.name, engine="onnxruntime", precision="int8")
    problem = SearchProblem(
        onnx_path=onnx_path,
        work=work / "search",
        target=target,
        runner=RUNNER,
        calibration=calibration,
        image_size=SIZE,
        score=accuracy,
        reference=accuracy(reference),
        max_drop=GOAL_DROP,
        time_budget_s=args.budget,
        features=cpu_features(),
    )
    started = time.time()
    result = search_recipes(problem, Log())
    search_seconds = time.time() - started
    notes["engine: auto"] = {
        "search_seconds": round(search_seconds, 1),
        "stopped": result.stopped,
        "rows": len(result.rows),
        "recipe": result.best.to_json() if result.best else None,
    }
    if result.best is not None:
        build_recipe(problem, result.best, work / "auto")
        artifacts["engine: auto"] = work / "auto"
    olive_artifact, notes["Olive"] = olive(
        args, onnx_path, calibration, data["val"], work / "olive"
    )
    if olive_artifact is not None:
        artifacts["Olive"] = olive_artifact
    return artifacts, notes


def measure(name: str, artifacts: dict[str, Path], notes: dict, data: dict, args) -> dict:
    """Test accuracy of every artifact, then latency: --repeats rounds, each timing every
    artifact once in a fresh process (interleaved, so a change in the machine's load hits all
    methods alike); the median of each artifact's per-process medians."""
    test_images, test_labels = data["test"]
    rows = []
    for label, artifact in artifacts.items():
        predictor = load_artifact(artifact, threads=args.threads)
        labels = predict_labels(predictor, test_images, 16)
        predictor.close()
        manifest = json.loads((artifact / "artifact.json").read_text())
        rows.append(
            {
                "method": label,
                "test_accuracy": float((labels == test_labels).mean()),
                "size_mb": manifest["bytes"] / 2**20,
                "recipe": manifest.get("recipe"),
                "process_medians_ms": [],
            }
        )
    for _ in range(args.repeats):
        for row, artifact in zip(rows, artifacts.values(), strict=True):
            timing = time_artifact(
                artifact,
                batch=1,
                size=SIZE,
                threads=args.threads,
                seconds=args.seconds,
                processes=1,
            )
            row["process_medians_ms"].append(timing["median_ms"])
    for row in rows:
        runs = row["process_medians_ms"]
        row["median_ms"] = float(np.median(runs))
        row["spread"] = (max(runs) - min(runs)) / row["median_ms"]
        print(
            f"  {row['method']}: {row['median_ms']:.3g} ms, accuracy {row['test_accuracy']:.4f}",
            flush=True,
        )
    eager = rows[0]
    for row in rows:
        row["speedup"] = eager["median_ms"] / row["median_ms"]
        row["drop"] = eager["test_accuracy"] - row["test_accuracy"]
    if "Olive" not in artifacts:
        rows.append({"method": "Olive", "error": notes["Olive"].get("error")})
    return {
        "model": name,
        "search": notes["engine: auto"],
        "olive": notes["Olive"],
        "rows": rows,
        "verdict": verdict(rows),
    }


#: the builds engine: auto chooses among on a CPU runner without TVM tuning: onnxruntime fp32
#: and the searched int8 recipe (PyTorch is never faster here)
AUTO_CHOICES = ("onnxruntime fp32", "engine: auto")


def verdict(rows: list[dict]) -> dict:
    """The issue's goals for engine: auto's choice (the fastest of its builds within 1 point
    on the test split): >= 5x eager, and no rival at the same drop faster by over 3%."""
    within = [
        r
        for r in rows
        if r["method"] in AUTO_CHOICES and "median_ms" in r and r["drop"] <= GOAL_DROP
    ]
    if not within:
        return {"met": False, "why": "no build of engine: auto within the drop limit"}
    auto = min(within, key=lambda r: r["median_ms"])
    rivals = [
        r
        for r in rows
        if "median_ms" in r
        and r["method"].startswith(("onnxruntime static", "Olive"))
        and r["drop"] <= GOAL_DROP
    ]
    faster = [r["method"] for r in rivals if r["median_ms"] < auto["median_ms"] * 0.97]
    return {
        "chosen": auto["method"],
        "p50_ms": auto["median_ms"],
        "speedup": auto["speedup"],
        "drop": auto["drop"],
        "speedup_met": auto["speedup"] >= GOAL_SPEEDUP,
        "drop_met": auto["drop"] <= GOAL_DROP,
        "faster_rivals_at_same_drop": faster,
        "met": auto["speedup"] >= GOAL_SPEEDUP and not faster,
    }


def _shown(method: str) -> str:
    return "engine: auto, int8 searched" if method == "engine: auto" else method


def markdown(results: dict) -> str:
    host = results["host"]
    lines = [
        "# engine: auto against fixed int8 recipes, onnxruntime and Olive\n",
        f"CPU: {host['cpu']} ({host['machine']}), {results['threads']} threads, batch 1, "
        f"224x224; latency: median of {results['repeats']} processes' medians; accuracy: "
        f"top-1 on {SPLITS['test']} test images of a synthetic 10-class set (drop against "
        "PyTorch eager fp32, in points). CPU features: "
        f"{', '.join(results['cpu']['flags']) or 'none found'}.\n",
    ]
    for model in results["models"]:
        lines += [
            f"## {model['model']}\n",
            "| method | p50 ms | spread | speed-up | accuracy | drop (points) | size MiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in model["rows"]:
            if "median_ms" not in row:
                lines.append(f"| {row['method']} | did not run: {row.get('error')} ||||||")
                continue
            name = (
                "engine: auto, int8 searched" if row["method"] == "engine: auto" else row["method"]
            )
            lines.append(
                f"| {name} | {row['median_ms']:.3g} | {row['spread']:.1%} | "
                f"{row['speedup']:.2f}x | {row['test_accuracy']:.4f} | "
                f"{100 * row['drop']:+.1f} | {row['size_mb']:.3g} |"
            )
        search, v = model["search"], verdict(model["rows"])
        recipe = search.get("recipe")
        lines += [
            "",
            (
                f"`engine: auto` (the fastest of its builds within {100 * GOAL_DROP:g} point) "
                f"keeps **{_shown(v['chosen'])}**: {v['p50_ms']:.3g} ms, "
                f"{v['speedup']:.2f}x eager, "
                f"drop {100 * v['drop']:+.1f} points."
                if "chosen" in v
                else "`engine: auto` has no build within the drop limit."
            ),
            "",
            f"Search: {search['rows']} candidates in {search['search_seconds']:.0f} s"
            + (f", stopped: {search['stopped']}" if search.get("stopped") else "")
            + (f"; chosen recipe: {json.dumps(recipe)}" if recipe else "; no recipe chosen"),
            "",
            f"Goal (>= {GOAL_SPEEDUP:g}x eager within {100 * GOAL_DROP:g} point, no "
            f"rival faster by over 3% at that drop): **{'met' if v['met'] else 'missed'}**"
            + (
                ""
                if v["met"]
                else f" (rivals faster: {', '.join(v.get('faster_rivals_at_same_drop', [])) or 'none'};"
                f" speed-up goal {'met' if v.get('speedup_met') else 'missed'})"
            ),
            "",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3, help="measuring processes per artifact")
    parser.add_argument("--seconds", type=float, default=5.0, help="time cap per process")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=600.0, help="recipe search seconds")
    parser.add_argument("--olive-python", type=Path, default=None)
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument(
        "--retime",
        action="store_true",
        help="measure again the artifacts of the last full run (no training, search or Olive)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    data = dataset()
    names = [n for n in args.models.split(",") if n]
    if args.train_only:
        for name in names:
            train(name, data, args.epochs)
        return
    path = args.out / "auto_optimise.json"
    earlier = json.loads(path.read_text())["models"] if path.exists() else []
    results = {
        "benchmark": "auto_optimise",
        "threads": args.threads,
        "repeats": args.repeats,
        "host": host_facts(args.threads),
        "cpu": cpu_features(),
        "tools": tool_versions(),
        # networks not measured now keep their last results (same host: see "host")
        "models": [m for m in earlier if m["model"] in MODELS and m["model"] not in names],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for name in names:  # written after each network, so a long run keeps what it measured
        results["models"].append(bench_model(name, data, args))
        results["models"].sort(key=lambda m: list(MODELS).index(m["model"]))
        path.write_text(json.dumps(results, indent=2) + "\n")
        table = markdown(results)
        (args.out / "auto_optimise.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
