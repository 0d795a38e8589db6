"""A tiny classification and detection project searched and trained with `train.device: cuda`
(or the device given second), through the same API `tango run` uses; prints what each train
and search manifest recorded. For gpu-check.sh: `python scripts/gpu_pipeline.py WORK [DEVICE]`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROJECTS = {
    "gpu-cls": """\
name: gpu-cls
task: classification
data: {path: data, format: imagefolder, image_size: 32, synth: {images_per_class: 60, size: 32}}
search: {families: [resnet], levels: [xs, s], trials: 2, epochs: 2}
train: {epochs: 3, batch: 32, device: DEVICE}
targets: [{name: cpu, runner: local-cpu, engine: onnxruntime}]
""",
    "gpu-det": """\
name: gpu-det
task: detection
data: {path: data, format: yolo, image_size: 64, synth: {images_per_class: 12, size: 64}}
search: {families: [yolov8], levels: [xs], trials: 1, epochs: 1, image_sizes: [64]}
train: {epochs: 2, batch: 8, device: DEVICE}
targets: [{name: cpu, runner: local-cpu, engine: onnxruntime}]
""",
}


def main(work: Path, device: str = "cuda") -> None:
    from tango_ci import api
    from tango_ci.rundir import read_json

    subprocess.run(["git", "init", "-q", str(work)], check=True)
    shutil.copytree(ROOT / "runners", work / "runners")
    shutil.copytree(ROOT / "schemas", work / "schemas")
    for name, text in PROJECTS.items():
        folder = work / "projects" / name
        folder.mkdir(parents=True)
        (folder / "project.yaml").write_text(text.replace("DEVICE", device))
        run = api.run(folder, until="train")
        manifest = read_json(run.stage_dir("train") / "manifest.json")
        search = read_json(run.stage_dir("search") / "manifest.json")
        print(
            name,
            json.dumps(
                {
                    "train_device": manifest["summary"]["device"],
                    "search_device": search["summary"]["device"],
                    "train_seconds": manifest["duration_s"],
                    "search_seconds": search["duration_s"],
                    "summary": {k: v for k, v in manifest["summary"].items() if k != "device"},
                }
            ),
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:])
