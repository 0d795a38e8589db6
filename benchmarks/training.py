"""Training throughput: images per second of one epoch, the settings before issue 12 against the
current ones, side by side in one run, for a classification and a detection model.

Before: classification batches prepared in the training process (no loader workers);
detection on one torch thread (ultralytics' default on a 2-core host) without loader workers.
Now: `train.device: auto`: on a CPU all threads and batches made in the training process (a
loader worker measured slower there), on CUDA mixed precision and loader workers. Each case runs in its own process, cases alternate, and each
figure is the median over repeats of the median epoch after a warm-up epoch. CPU utilisation
is the process's CPU time (its loader workers included) over its wall time.

    .venv/bin/python benchmarks/training.py                 # CPU cases (about 4 minutes)
    .venv/bin/python benchmarks/training.py --cuda          # adds the CUDA cases
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = {
    # name: (task, device, threads (None: all), workers (None: auto))
    "classification-before": ("classification", "cpu", None, 0),
    "classification-now": ("classification", "auto", None, None),
    "detection-before": ("detection", "cpu", 1, 0),
    "detection-now": ("detection", "auto", None, None),
}
CUDA_CASES = {
    "classification-cuda": ("classification", "cuda", None, None),
    "detection-cuda": ("detection", "cuda", None, None),
}


def _device(device: str, threads: int | None, workers: int | None):
    from dataclasses import replace

    from tango_ci.train.device import resolve_device

    resolved = resolve_device(device, workers=workers)
    return replace(resolved, threads=threads) if threads else resolved


def run_case(
    task: str,
    device: str,
    threads: int | None,
    workers: int | None,
    work: Path,
    epochs: int,
    images: int,
    size: int,
) -> dict:
    """One case in this process: train ``epochs`` epochs, return per-epoch throughput."""
    import torch

    from tango_ci.data.synth import SynthRequest, synthesize

    resolved = _device(device, threads, workers)
    torch.set_num_threads(resolved.threads)
    if task == "classification":
        from tango_ci.data.dataset import build_arrays
        from tango_ci.models import build_model
        from tango_ci.train.trainer import TrainConfig, train_model

        synthesize(
            SynthRequest(
                out=work / "cls",
                task="classification",
                images_per_class=images // 3,
                size=size,
                seed=0,
            )
        )
        built = build_arrays(
            work / "cls", image_size=size, val_fraction=0.1, seed=0, max_bad_fraction=0.0
        )
        train, val = built["arrays"]["train"], built["arrays"]["val"]
        result = train_model(
            build_model("resnet", "s", 3),
            train,
            val,
            TrainConfig(epochs=epochs, batch=64, lr=0.01, seed=0),
            device=resolved,
        )
        rates = [h["images_per_s"] for h in result.history]
        quality = result.best_accuracy
        workers_used = resolved.loader_workers(-(-len(train[0]) // 64))
    else:
        from tango_ci.detection.models import model_yaml, write_model_yaml
        from tango_ci.detection.train import train_yolo
        from tango_ci.detection.ultralytics_env import prepare_environment

        prepare_environment(work / "config")
        synthesize(
            SynthRequest(
                out=work / "det", task="detection", images_per_class=images // 3, size=size, seed=0
            )
        )
        yaml_path = write_model_yaml(work / "m.yaml", model_yaml("yolov8", "n", 0.33, 0.25, 3))
        train_count = sum(1 for _ in (work / "det" / "images" / "train").glob("*.png"))
        seconds: list[float] = []
        started = [time.perf_counter()]

        def on_epoch(epoch: int, metrics: dict) -> None:
            now = time.perf_counter()
            seconds.append(now - started[0])
            started[0] = now

        result = train_yolo(
            yaml_path,
            work / "det" / "data.yaml",
            work / "run",
            epochs=epochs,
            imgsz=size,
            batch=16,
            lr0=0.01,
            seed=0,
            mosaic=1.0,
            device=resolved,
            on_epoch=on_epoch,
        )
        # epoch wall time, validation included (ultralytics reports once more after training)
        rates = [train_count / s for s in seconds[:epochs]]
        quality = max((h["map50"] for h in result["history"]), default=0.0)
        workers_used = resolved.loader_workers(-(-train_count // 16))
    steady = rates[1:] or rates
    return {
        "images_per_s": statistics.median(steady),
        "epochs": rates,
        "quality": quality,
        "device": resolved.name,
        "precision": resolved.precision,
        "threads": resolved.threads,
        "workers": workers_used,
    }


def measure(name: str, spec: tuple, args) -> dict:
    """Run one case in a fresh process; add its wall time and CPU utilisation."""
    task, _device, _threads, _workers = spec
    with tempfile.TemporaryDirectory() as work:
        command = [
            sys.executable,
            __file__,
            "--case",
            name,
            "--work",
            work,
            "--epochs",
            str(args.epochs),
            "--images",
            str(args.images[task]),
            "--size",
            str(args.size[task]),
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        completed = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise SystemExit(f"case {name} failed:\n{completed.stderr[-3000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result.update(case=name, task=task, wall_s=round(wall, 1), cpu_percent=round(100 * cpu / wall))
    return result


def table(rows: list[dict]) -> str:
    lines = [
        "| case | device | threads | workers | images/s (median) | vs before | CPU % | quality |",
        "|---|---|---|---|---|---|---|---|",
    ]
    before = {r["task"]: r["images_per_s"] for r in rows if r["case"].endswith("-before")}
    for r in rows:
        ratio = r["images_per_s"] / before[r["task"]] if r["task"] in before else float("nan")
        lines.append(
            f"| {r['case']} | {r['device']} ({r['precision']}) | {r['threads']} | "
            f"{r['workers']} | {r['images_per_s']:.0f} | {ratio:.2f}x | "
            f"{r['cpu_percent']} | {r['quality']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cuda", action="store_true", help="also the CUDA cases")
    parser.add_argument("--repeats", type=int, default=2, help="processes per case")
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs per process (first is warm-up)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--name", default="training", help="file name of the results")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--images", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    cases = {**CASES, **(CUDA_CASES if args.cuda else {})}
    if args.case:  # a child process: one case, JSON on the last line
        task, device, threads, workers = {**CASES, **CUDA_CASES}[args.case]
        print(
            json.dumps(
                run_case(
                    task, device, threads, workers, args.work, args.epochs, args.images, args.size
                )
            )
        )
        return
    args.images = {"classification": 3000, "detection": 120}
    args.size = {"classification": 32, "detection": 160}
    runs: dict[str, list[dict]] = {name: [] for name in cases}
    for repeat in range(args.repeats):
        for name, spec in cases.items():  # alternate the cases, so drift hits them all
            runs[name].append(measure(name, spec, args))
            last = runs[name][-1]
            print(
                f"repeat {repeat + 1}: {name}: {last['images_per_s']:.0f} images/s, "
                f"CPU {last['cpu_percent']}%",
                file=sys.stderr,
            )
    rows = []
    for measured in runs.values():
        row = dict(measured[0])
        row["images_per_s"] = statistics.median(m["images_per_s"] for m in measured)
        row["cpu_percent"] = round(statistics.median(m["cpu_percent"] for m in measured))
        row["repeats"] = [m["images_per_s"] for m in measured]
        rows.append(row)
    host = {
        "cpu": platform.processor() or platform.machine(),
        "cores": _cores(),
        "python": platform.python_version(),
        "gpu": rows[-1]["device"] if args.cuda else None,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(
        json.dumps({"host": host, "rows": rows}, indent=2) + "\n"
    )
    text = (
        f"# Training throughput\n\nHost: {_cpu_name()}, {host['cores']} cores"
        f"{', GPU ' + host['gpu'] if host['gpu'] else ''}. {args.repeats} processes per "
        f"case, {args.epochs} epochs each (median epoch after the first).\n\n"
        f"{table(rows)}\n"
    )
    (args.out / f"{args.name}.md").write_text(text)
    print(text)


def _cores() -> int:
    from tango_ci.train.device import available_cores

    return available_cores()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
