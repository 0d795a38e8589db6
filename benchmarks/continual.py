"""Drift detection on a synthetic stream with a shift at a known time.

The example project's bundle (from its latest run) serves a stream of synthetic shape images
in windows of ``--window`` requests: ``--before`` windows like its training data, then
``--after`` windows of the same shapes under a shift (``--shift``: ``dim``, the light halves;
``tint``, the colours rotate; ``noise``, heavy sensor noise). Each window's prediction log is
compared with the bundle's reference by ``tango monitor``. Reported: false alarms before the
shift (goal: at most 1 in 20) and how many windows after it the shift is flagged (goal: 2).

    python benchmarks/continual.py [--window 100] [--before 20] [--after 5] [--shift dim]

Writes benchmarks/results/continual.json and .md.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT

from tango_ci.data.synth import SHAPES, shape_image
from tango_ci.monitor import monitor
from tango_ci.runtime import Bundle
from tango_ci.runtime.logs import PredictionLog
from tango_ci.runtime.server import Service

SHIFTS = ("dim", "tint", "noise")


def shifted(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "dim":
        return (image.astype(np.float32) * 0.5).astype(np.uint8)
    if kind == "tint":
        return image[..., [1, 2, 0]]
    noise = rng.normal(0, 40, image.shape)
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def window(bundle: Path, images: list[np.ndarray], folder: Path) -> dict:
    log = PredictionLog(folder / "log.sqlite")
    service = Service(Bundle(bundle), log=log)
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        service.image(buffer.getvalue())
    log.close()
    return monitor(folder / "log.sqlite", bundle, folder / "report", window=len(images))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=100, help="requests per window")
    parser.add_argument("--before", type=int, default=20, help="windows before the shift")
    parser.add_argument("--after", type=int, default=5, help="windows after the shift")
    parser.add_argument("--shift", choices=SHIFTS, default="dim")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    from tango_ci import api

    project = ROOT / "projects" / "example-shapes"
    spec = api.load_project(project)
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        bundle = Path(work) / "bundle"
        manifest = api.deploy_run(project, spec.targets[0].name, bundle)
        size = spec.data.image_size
        for index in range(args.before + args.after):
            after = index >= args.before
            images = []
            for i in range(args.window):
                image = np.asarray(shape_image(rng, SHAPES[i % len(SHAPES)], size))
                images.append(shifted(image, args.shift, rng) if after else image)
            result = window(bundle, images, Path(work) / f"w{index}")
            rows.append(
                {
                    "window": index,
                    "shifted": after,
                    "drift": result["drift"],
                    "p_values": {k: c["p_value_corrected"] for k, c in result["checks"].items()},
                    "mean_confidence": result["mean_confidence"]["current"],
                }
            )
            print(f"window {index} ({'after' if after else 'before'}): drift {result['drift']}")
    before = [r for r in rows if not r["shifted"]]
    after = [r for r in rows if r["shifted"]]
    flagged = next((i for i, r in enumerate(after) if r["drift"]), None)
    results = {
        "benchmark": "continual",
        "bundle": {k: manifest.get(k) for k in ("project", "target", "version")},
        "shift": args.shift,
        "window": args.window,
        "false_alarms": sum(r["drift"] for r in before),
        "windows_before": len(before),
        "flagged_after_windows": None if flagged is None else flagged + 1,
        "goal_met": sum(r["drift"] for r in before) <= max(1, len(before) // 20)
        and flagged is not None
        and flagged + 1 <= 2,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "continual.json").write_text(json.dumps(results, indent=2) + "\n")
    checks = list(rows[0]["p_values"])
    lines = [
        "# Drift detection on a stream with a known shift\n",
        f"Bundle {results['bundle']}; windows of {args.window} requests; shift `{args.shift}` "
        f"after window {args.before - 1}. False alarms before it: {results['false_alarms']} of "
        f"{len(before)}; flagged {results['flagged_after_windows']} window(s) after it; goal "
        f"(at most 1 in 20, within 2 windows): **{'met' if results['goal_met'] else 'missed'}**.\n",
        "| window | shifted | drift | " + " | ".join(checks) + " | mean confidence |",
        "|---|---|---|" + "---|" * len(checks) + "---|",
    ] + [
        f"| {r['window']} | {'yes' if r['shifted'] else ''} | {'**drift**' if r['drift'] else ''} | "
        + " | ".join(f"{r['p_values'].get(c, float('nan')):.3g}" for c in checks)
        + f" | {r['mean_confidence']:.3f} |"
        for r in rows
    ]
    (args.out / "continual.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
