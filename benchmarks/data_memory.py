"""Peak memory of the classification data stage: images decoded into one array and grouped
into splits in place (``build_arrays``) against stacking per-image arrays (what it did before),
side by side in one run, each in a fresh process per image size.

A synthetic class-folder dataset of JPEG photos of mixed sizes is written once (nothing
downloaded); each side reads it at ``--sizes`` and reports the rise of its peak resident memory
(``ru_maxrss``) over the process's start, against the bytes of the decoded pixels. The
ratio is what a team can plan with: the stage needs about ratio x images x size^2 x 3 bytes.

    .venv/bin/python benchmarks/data_memory.py [--images 3000] [--sizes 64 128 224]

Writes benchmarks/results/data_memory.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

_SIDE = """
import resource, sys
from pathlib import Path
sys.path.insert(0, {root!r})
import numpy as np
from tango_ci.data.dataset import build_arrays, decode, list_imagefolder
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
root, size = Path({data!r}), {size}
if {side!r} == "one array, splits in place":
    arrays = build_arrays(root, image_size=size, val_fraction=0.2, seed=0, max_bad_fraction=0)
    pixels = sum(images.nbytes for images, _ in arrays["arrays"].values())
else:  # the former way: a list of per-image arrays, stacked
    images = [decode(item.path, size) for item in list_imagefolder(root)[1]]
    pixels = np.stack(images).nbytes
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(pixels, (peak - base) * 1024)
"""
SIDES = ("stacked per-image arrays (before)", "one array, splits in place")


def _dataset(folder: Path, count: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(count):
        width, height = (int(v) for v in rng.integers(160, 640, 2))
        path = folder / f"class{index % 4}" / f"{index}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((width, height)).save(path, quality=80)
    return folder


def _measure(side: str, data: Path, size: int) -> dict:
    code = _SIDE.format(root=str(ROOT), data=str(data), size=size, side=side)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    pixels, rise = int(out[-2]), int(out[-1])
    return {"side": side, "size": size, "pixels_mib": pixels / 2**20, "peak_rise_mib": rise / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 224])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tango-data-memory-") as work:
        data = _dataset(Path(work) / "data", args.images)
        for size in args.sizes:
            for side in SIDES:
                row = _measure(side, data, size)
                row["ratio"] = row["peak_rise_mib"] / row["pixels_mib"]
                rows.append(row)
                print(f"{size} px, {side}: {row['peak_rise_mib']:.0f} MiB ({row['ratio']:.2f}x)")
    result = {
        "benchmark": "data_memory",
        "host": platform.processor() or platform.machine(),
        "images": args.images,
        "rows": rows,
    }
    lines = [
        "# Classification data stage: peak memory",
        "",
        f"{args.images} JPEG photos (160-640 px a side) read at each size; the rise of the "
        "process's peak resident memory against the bytes of the decoded pixels.",
        "",
        "| size | method | pixels MiB | peak rise MiB | peak / pixels |",
        "|---|---|---|---|---|",
        *(
            f"| {r['size']} | {r['side']} | {r['pixels_mib']:.0f} | {r['peak_rise_mib']:.0f} | "
            f"{r['ratio']:.2f}x |"
            for r in rows
        ),
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "data_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "data_memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
