"""What the benchmark scripts share: preparing a model as the train stage would, building
variants with the real backends, and timing them with the bench worker."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tango_ci.bench.latency import measure_repeated  # noqa: E402
from tango_ci.compile import BuildRequest, get_compiler, load_artifact  # noqa: E402
from tango_ci.contracts import TrainedModel  # noqa: E402
from tango_ci.data.dataset import preprocess  # noqa: E402
from tango_ci.data.synth import SHAPES, shape_image  # noqa: E402
from tango_ci.export import export_onnx  # noqa: E402
from tango_ci.models import build_model  # noqa: E402
from tango_ci.rundir import write_record  # noqa: E402
from tango_ci.spec import TargetSpec, load_runner  # noqa: E402

RUNNER = load_runner(ROOT / "runners" / "local-cpu.yaml")


def calibration_images(size: int, count: int = 32) -> np.ndarray:
    """Shape images at ``size``: real-looking pixels for int8 calibration, nothing downloaded."""
    rng = np.random.default_rng(0)
    return preprocess(
        np.stack([np.asarray(shape_image(rng, SHAPES[i % 3], size)) for i in range(count)])
    )


def prepare(work: Path, info: dict, weights: Path | None = None) -> tuple[Path, Path]:
    """A model folder as the train stage writes it, and its ONNX export (dynamic batch)."""
    model = build_model(info["family"], info["level"], len(info["classes"]))
    if weights is not None:
        model.load_state_dict(torch.load(weights / "best.pt", weights_only=True))
    model_dir = work / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), model_dir / "best.pt")
    write_record(
        model_dir,
        TrainedModel(
            task="classification",
            family=info["family"],
            name=f"{info['family']}-{info['level']}",
            architecture=f"{info['family']}-{info['level']}",
            image_size=info["image_size"],
            classes=tuple(info["classes"]),
            shape={"level": info["level"]},
        ),
    )
    size = info["image_size"]
    onnx_path = work / "model.onnx"
    export_onnx(model.eval(), onnx_path, (1, 3, size, size))
    return model_dir, onnx_path


def build(
    work: Path,
    onnx_path: Path,
    model_dir: Path,
    engine: str,
    precision: str,
    batch: int,
    calibration: np.ndarray,
    options: dict | None = None,
    runner=None,
) -> tuple[Path, dict]:
    runner = runner or RUNNER
    target = TargetSpec(
        name=f"{engine}-{precision}-b{batch}",
        runner=runner.name,
        engine=engine,
        precision=precision,
        batch=batch,
    )
    artifact = work / target.name / (options or {}).get("mode", "default")
    manifest = get_compiler(engine).build(
        BuildRequest(
            onnx_path=onnx_path,
            out_dir=artifact,
            target=target,
            runner=runner,
            calibration=calibration if precision == "int8" else None,
            options={"model_dir": model_dir, **(options or {})},
        )
    )
    return artifact, manifest


def outputs(artifact: Path, batch: np.ndarray, threads: int) -> np.ndarray:
    return load_artifact(artifact, threads=threads).run(batch)[0]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def time_artifact(
    artifact: Path, *, batch: int, size: int, threads: int, seconds: float, processes: int
) -> dict:
    """Median over ``processes`` measuring processes of their median latency."""
    runs = measure_repeated(
        artifact,
        repeat=processes,
        batch=batch,
        size=size,
        threads=threads,
        max_seconds=seconds,
        min_seconds=min(2.0, seconds),
    )["runs"]
    return {
        "median_ms": runs["median_p50_ms"],
        "process_medians_ms": runs["p50_ms"],
        "spread": runs["spread"],
        "cv": runs["cv_median"],
        "repeats": runs["repeats"],
    }
