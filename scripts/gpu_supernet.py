"""Supernet training on CUDA: a tiny supernet project trained with `train.device: cuda`
through the API `tango run` uses, then the sandwich-rule epoch throughput of both elastic
families on this host's GPU and CPU, side by side. For the device machine:
`python scripts/gpu_supernet.py WORK [OUT]` (prints JSON lines; writes supernet-gpu.json)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROJECT = """\
name: gpu-supernet
task: classification
data: {path: data, format: imagefolder, image_size: 32, synth: {images_per_class: 80, size: 32}}
search: {strategy: supernet, families: [FAMILY]}
train: {epochs: 3, batch: 64, device: cuda}
targets: [{name: cpu, runner: local-cpu, engine: onnxruntime}]
"""


def pipeline(work: Path, family: str) -> dict:
    from tango_ci import api
    from tango_ci.rundir import read_json

    folder = work / "projects" / family
    folder.mkdir(parents=True)
    (folder / "project.yaml").write_text(
        PROJECT.replace("FAMILY", family).replace("gpu-supernet", f"gpu-{family}")
    )
    run = api.run(folder, until="train")
    manifest = read_json(run.stage_dir("train") / "manifest.json")
    history = read_json(run.stage_dir("train") / "history.json")
    return {
        "family": family,
        "device": manifest["summary"]["device"],
        "seconds": manifest["duration_s"],
        "val_accuracy": manifest["summary"]["val_accuracy"],
        "val_accuracy_smallest": manifest["summary"]["val_accuracy_smallest"],
        "images_per_s": [h["images_per_s"] for h in history],
    }


def throughput(family: str, kind: str, images: int = 2048) -> dict:
    import numpy as np
    import torch

    from tango_ci.models import get_elastic_family
    from tango_ci.supernet.train import SupernetConfig, train_supernet_loop
    from tango_ci.train.device import resolve_device

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (images, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, images)
    net = get_elastic_family(family).supernet(10, 32, (32, 24))
    config = SupernetConfig(2, 128, 0.005, 1e-4, None, 2, True, False, 0)
    device = resolve_device(kind)
    began = time.perf_counter()
    state = train_supernet_loop(net, (x, y), (x[:256], y[:256]), config, device=device)
    return {
        "family": family,
        "device": device.describe(),
        "epoch_images_per_s": [h["images_per_s"] for h in state["history"]],
        "seconds": round(time.perf_counter() - began, 1),
    }


def main(work: Path, out: Path) -> None:
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    shutil.copytree(ROOT / "runners", work / "runners")
    shutil.copytree(ROOT / "schemas", work / "schemas")
    results = []
    for family in ("ofa-resnet", "ofa-mobilenetv3"):
        results.append({"pipeline": pipeline(work, family)})
        print(json.dumps(results[-1]), flush=True)
        for kind in ("cuda", "cpu"):
            results.append({"throughput": throughput(family, kind)})
            print(json.dumps(results[-1]), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "supernet-gpu.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2] if len(sys.argv) > 2 else "."))
