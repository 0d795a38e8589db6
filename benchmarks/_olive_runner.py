"""Run Microsoft Olive's accuracy-aware static int8 quantisation of an ONNX classifier on CPU.

Runs INSIDE a separate venv holding olive-ai (never imports tango_ci):

    /tmp/olive-venv/bin/python benchmarks/_olive_runner.py --model in.onnx \
        --calibration calib.npz --validation val.npz --out OUTDIR [--max-drop 0.01]

calib.npz: ``images`` (N,3,H,W float32, preprocessed); val.npz: ``images`` and ``labels`` (int64).
Workflow (Olive's "auto-tuning" mode: a pass flow plus a search strategy, via the Python API):
OnnxPeepholeOptimizer -> OnnxStaticQuantization, whose Olive-default search space (QDQ/QOperator,
int8/uint8, per-channel, reduce-range, MinMax/Entropy/Percentile calibration, ORT pre-processing)
is sampled jointly by Olive's TPE sampler [-> OrtSessionParamsTuning with --tune-session]. Every
trial is evaluated for top-1 accuracy on val.npz (goal: at most --max-drop below the fp32 input)
and average latency; Olive keeps the Pareto trials that meet the goal, ranked by --prefer, and
the best one is copied to OUTDIR/model.onnx. OUTDIR/olive.json records everything; exit 2 = fail.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

import numpy as np

T0 = time.perf_counter()  # "seconds" in olive.json includes Olive's (slow) import
os.environ.setdefault("OLIVE_DISABLE_TELEMETRY", "1")  # no network here; keep Olive quiet
try:
    from olive.data.registry import Registry
except ImportError as _exc:  # reported in olive.json by main()
    Registry, IMPORT_ERROR = None, _exc


# ---- data components, registered by name; Olive re-imports this file as its `user_script` ----
class _NpzDataset:
    """(inputs_dict, label) pairs from an .npz file; label is 0 when the file has none."""

    def __init__(self, path: str, input_name: str):
        data = np.load(path)
        self.images = data["images"].astype(np.float32)
        n = len(self.images)
        self.labels = data["labels"].astype(np.int64) if "labels" in data else np.zeros(n, np.int64)
        self.input_name = input_name

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        # calibration needs dict inputs; torch's default collate batches them
        return {self.input_name: self.images[i]}, self.labels[i]


def tango_argmax(output, **kwargs):
    # logits (B, C) -> predicted class ids for torchmetrics' multiclass accuracy
    return output.argmax(dim=-1)


def tango_npz_dataset(path: str, input_name: str, **kwargs):
    return _NpzDataset(path, input_name)


if Registry is not None:  # (Olive can only register functions, not classes)
    Registry.register_dataset("tango_npz_dataset")(tango_npz_dataset)
    Registry.register_post_process("tango_argmax")(tango_argmax)


def _model_io(model_path: str) -> tuple[str, int | None, int]:
    """Input name, fixed batch size (None if dynamic) and number of classes from the graph."""
    import onnx

    graph = onnx.load(model_path, load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    inp = next(i for i in graph.input if i.name not in inits)
    batch = inp.type.tensor_type.shape.dim[0].dim_value or None
    num_classes = graph.output[0].type.tensor_type.shape.dim[-1].dim_value
    return inp.name, batch, num_classes


def _patch_olive_footprint() -> None:
    """Work around an Olive 0.13.0 bug: re-recording a cached pass output (every search step
    after the first reuses the peephole output) calls setattr(node, "model_config", ...), but the
    pydantic field is `model_config_data` (alias "model_config"), so each such step FAILS."""
    from olive.engine.footprint import FootprintNode

    original = FootprintNode.update

    def update(self, **kwargs):
        if "model_config" in kwargs:
            kwargs["model_config_data"] = kwargs.pop("model_config")
        return original(self, **kwargs)

    FootprintNode.update = update


def _metric_values(metrics) -> dict:
    """{"accuracy-accuracy_score": 0.9, "latency-avg": 1.2} from Olive's metric results."""
    items = metrics.items() if metrics else []
    return {k: (v["value"] if isinstance(v, dict) else v.value) for k, v in items}


def build_config(args, input_name: str, batch: int | None, num_classes: int, work: Path) -> dict:
    script = str(Path(__file__).resolve())

    def data_config(name: str, path: str, post: bool) -> dict:
        cfg = {
            "name": name,
            "user_script": script,
            "load_dataset_config": {
                "type": "tango_npz_dataset",
                "params": {"path": str(Path(path).resolve()), "input_name": input_name},
            },
            # a fixed-batch graph cannot take a short last batch
            "dataloader_config": {"params": {"batch_size": batch or 32, "drop_last": bool(batch)}},
        }
        if post:
            cfg["post_process_data_config"] = {"type": "tango_argmax"}
        return cfg

    # top-1 accuracy with Olive's goal (trials below it are never output); priority = rank order
    acc_sub = {"name": "accuracy_score", "priority": 2 if args.prefer == "latency" else 1}
    acc_sub["goal"] = {"type": "max-degradation", "value": args.max_drop}
    acc_sub["metric_config"] = {"task": "multiclass", "num_classes": num_classes}
    accuracy = {"name": "accuracy", "type": "accuracy", "data_config": "val_data"}
    accuracy["sub_types"] = [acc_sub]
    lat_sub = {"name": "avg", "priority": 1 if args.prefer == "latency" else 2}
    latency = {"name": "latency", "type": "latency", "data_config": "calib_data"}
    latency["sub_types"] = [lat_sub]
    # params not fixed here are searched over the pass's Olive-default search space
    quant = {"type": "OnnxStaticQuantization", "data_config": "calib_data"}
    quant["calibration_providers"] = ["CPUExecutionProvider"]
    passes = {"peephole": {"type": "OnnxPeepholeOptimizer"}, "quantization": quant}
    if args.tune_session:
        passes["session_tuning"] = {"type": "OrtSessionParamsTuning", "data_config": "calib_data"}
    return {
        "input_model": {"type": "ONNXModel", "model_path": str(Path(args.model).resolve())},
        "systems": {
            "local_system": {
                "type": "LocalSystem",
                "accelerators": [
                    {"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}
                ],
            }
        },
        "data_configs": [
            data_config("calib_data", args.calibration, post=False),
            data_config("val_data", args.validation, post=True),
        ],
        # explicit "type": Olive 0.13.0 crashes resolving resources of an untyped evaluator
        "evaluators": {"acc_lat": {"type": "OnnxEvaluator", "metrics": [accuracy, latency]}},
        "passes": passes,
        "search_strategy": {
            "execution_order": "joint",
            "sampler": "tpe",
            # Olive 0.13.0 drops `sampler_config` (so max_samples) when it serialises the engine
            # config; max_iter (counts invalid points too) is the cap that actually works
            "max_iter": args.max_trials or None,
            "max_time": args.max_time,
        },
        "evaluator": "acc_lat",
        "host": "local_system",
        "target": "local_system",
        "cache_dir": str(work / "cache"),
        "output_dir": str(work / "output"),
        "log_severity_level": 1 if args.verbose else 3,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--calibration", required=True)
    p.add_argument("--validation", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max-drop", type=float, default=0.01, help="max top-1 drop (fraction)")
    p.add_argument("--max-trials", type=int, default=12, help="search points; 0 = exhaustive")
    p.add_argument("--prefer", choices=["latency", "accuracy"], default="latency")
    p.add_argument("--max-time", type=int, default=None, help="search time budget in seconds")
    # OrtSessionParamsTuning costs seconds per trial and yields session settings, not a file
    p.add_argument("--tune-session", action="store_true")
    p.add_argument("--keep-work", action="store_true", help="keep OUTDIR/_olive_work (all trials)")
    p.add_argument("--verbose", action="store_true", help="Olive INFO logging")
    args = p.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "_olive_work"
    report: dict = {"tool": "olive", "max_drop": args.max_drop, "max_trials": args.max_trials}
    try:
        if Registry is None:
            raise IMPORT_ERROR
        import olive
        from olive.workflows import run as olive_run

        report["olive_version"] = olive.__version__
        _patch_olive_footprint()
        input_name, batch, num_classes = _model_io(args.model)
        config = build_config(args, input_name, batch, num_classes, work)
        report["config"] = config
        outputs = olive_run(config)
        report["input_metrics"] = _metric_values(outputs.get_input_model_metrics())
        nodes = outputs.footprint.nodes
        # every evaluated search trial, with its (last) pass config and whether it met the goal
        report["trials"] = [
            {
                "model_id": mid,
                "config": node.pass_run_config,
                "metrics": _metric_values(node.metrics.value),
                "goals_met": node.metrics.if_goals_met,
            }
            for mid, node in nodes.items()
            if node.metrics and node.metrics.value and node.parent_model_id is not None
        ]
        # Olive's output models are the Pareto candidates that met the goal, best first
        best = outputs.get_best_candidate() if outputs.has_output_model() else None
        if best is None:
            raise RuntimeError(
                f"none of {len(report['trials'])} Olive trials met the accuracy goal "
                f"(max top-1 drop {args.max_drop})"
            )
        report["num_candidates"] = len(outputs.get_output_models())
        src = Path(best.model_path)
        src = src / "model.onnx" if src.is_dir() else src
        shutil.copyfile(src, out / "model.onnx")
        # pass flow from input to chosen model: [{"pass": ..., "model_id": ..., "config": ...}]
        flow = [
            {"pass": nodes[mid].from_pass, "model_id": mid, "config": cfg}
            for mid, cfg in reversed(outputs.trace_back_run_history(best.model_id).items())
            if nodes[mid].parent_model_id is not None
        ]
        report["chosen"] = {
            "model_id": best.model_id,
            "metrics": _metric_values(best.metrics_value),
            "passes": flow,
            "inference_settings": best.get_inference_config(),
        }
    except Exception as exc:  # report any failure in olive.json
        report["error"] = f"{type(exc).__name__}: {exc}"
        report["traceback"] = traceback.format_exc()
    report["seconds"] = round(time.perf_counter() - T0, 2)
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    (out / "olive.json").write_text(json.dumps(report, indent=2, default=str))
    if "error" in report:
        print(report["traceback"], file=sys.stderr)
        return 2
    summary = {"seconds": report["seconds"], **report["chosen"]["metrics"]}
    print(json.dumps({"input": report["input_metrics"], "chosen": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
