"""A task and an engine added from this module alone, as ARCHITECTURE.md's recipes say.

The toy task tells bright 8x8 images from dark ones; the toy engine runs the exported ONNX
file through onnxruntime under its own name. Nothing outside this file knows either: the
project is validated and every stage runs through the plug-in tables.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tango_ci.compile import BaseCompiler, BuildRequest, Capabilities, Predictor
from tango_ci.contracts import TrainedModel
from tango_ci.plugins import ENGINES, PLUGINS_ENV, TASKS, register_engine, register_task
from tango_ci.rundir import file_sha256, read_json, read_record, write_json, write_record
from tango_ci.tasks import BaseTask, Evaluator, QualityMetric, evaluation_split
from tests.conftest import REPO, git

SIZE = 8


# ----------------------------------------------------------------------------- the toy task
def _network(width: int):
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, width, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 2)
    )


def _fit(model, images: np.ndarray, labels: np.ndarray, steps: int = 60) -> float:
    import torch

    torch.manual_seed(0)
    x, y = torch.from_numpy(_preprocess(images)), torch.from_numpy(labels.astype(np.int64))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    return float((model(x).argmax(1) == y).float().mean())


def _preprocess(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images.astype(np.float32).transpose(0, 3, 1, 2) / 255.0)


def _split(ctx, split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(ctx.run.stage_dir("data") / f"{split}.npz", allow_pickle=False) as data:
        return data["images"], data["labels"]


def _describe(task: str, width: int, parameters: int | None = None) -> TrainedModel:
    return TrainedModel(
        task=task,
        family="toy-net",
        name=f"toy-net-w{width}",
        architecture=f"1x1 conv to {width} channels, mean, linear",
        image_size=SIZE,
        classes=("dark", "bright"),
        shape={"width": width},
        parameters=parameters,
    )


def data_stage(ctx) -> None:
    with np.load(ctx.spec.data.resolved, allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    val, test = len(images) // 2, len(images) * 3 // 4  # the last quarter only the gate sees
    np.savez(ctx.folder / "train.npz", images=images[:val], labels=labels[:val])
    np.savez(ctx.folder / "val.npz", images=images[val:test], labels=labels[val:test])
    np.savez(ctx.folder / "test.npz", images=images[test:], labels=labels[test:])
    write_json(ctx.folder / "classes.json", ["dark", "bright"])
    for name in ("train.npz", "val.npz", "test.npz", "classes.json"):
        ctx.recorder.output_file(name, ctx.folder / name)


def train_stage(ctx) -> None:
    import torch

    width = read_json(ctx.run.stage_dir("search") / "best.json")["params"]["width"]
    model = _network(width)
    _fit(model, *_split(ctx, "train"))
    images, labels = _split(ctx, "val")
    with torch.no_grad():
        accuracy = float(
            (model(torch.from_numpy(_preprocess(images))).argmax(1).numpy() == labels).mean()
        )
    torch.save(model.state_dict(), ctx.folder / "best.pt")
    write_record(
        ctx.folder, _describe(ctx.spec.task, width, sum(p.numel() for p in model.parameters()))
    )
    write_json(
        ctx.folder / "metrics.json",
        {"val_hit_rate": accuracy, "best_epoch": 0, "epochs_run": 1, "stopped_early": False},
    )
    ctx.recorder.output_file("weights", ctx.folder / "best.pt")


def export_stage(ctx) -> None:
    from tango_ci.export import export_onnx, parity

    model = TASKS.get(ctx.spec.task).load_trained(ctx.run.stage_dir("train"))
    export_onnx(model, ctx.folder / "model.onnx", (1, 3, SIZE, SIZE), simplify=False)
    check = parity(
        model,
        ctx.folder / "model.onnx",
        _preprocess(_split(ctx, "val")[0]),
        ctx.spec.export.tolerance,
    )
    write_json(ctx.folder / "parity.json", check)
    ctx.recorder.output_file("onnx", ctx.folder / "model.onnx")
    ctx.recorder.summary["parity"] = check


class ToySpace:
    score_name = "hit_rate"

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.calibration = _preprocess(_split(ctx, "train")[0][:8])

    def suggest(self, trial) -> dict:
        return {"width": trial.suggest_categorical("width", [2, 4])}

    def key(self, params: dict) -> str:
        return f"toy-net-w{params['width']}"

    def export(self, params: dict, workdir: Path):
        import torch

        from tango_ci.export import export_onnx

        model = _network(params["width"])
        workdir.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), workdir / "best.pt")
        write_record(workdir, _describe(self.ctx.spec.task, params["width"]))
        export_onnx(model, workdir / "model.onnx", (1, 3, SIZE, SIZE), simplify=False)
        return workdir / "model.onnx", workdir, SIZE, {"architecture": self.key(params)}

    def train(self, params: dict, number: int, on_epoch, reporter) -> float:
        score = _fit(_network(params["width"]), *_split(self.ctx, "train"))
        on_epoch(0, {"hit_rate": score})
        return score


class HitRate(Evaluator):
    def __init__(self, ctx, quality: QualityMetric, model_dir: Path) -> None:
        self.quality = quality
        self.split = evaluation_split(ctx.run.stage_dir("data"))
        self.images, self.labels = _split(ctx, self.split)
        self.size = len(self.labels)
        self.model_dir = model_dir

    @property
    def reference(self) -> float:
        import torch

        model = TASKS.get("brightness").load_trained(self.model_dir)
        with torch.no_grad():
            outputs = model(torch.from_numpy(_preprocess(self.images))).numpy()
        return float((outputs.argmax(1) == self.labels).mean())

    def evaluate(self, predictor: Any, batch: int) -> dict:
        outputs = predictor.run(_preprocess(self.images))[0]
        return {
            "hit_rate": float((outputs.argmax(1) == self.labels).mean()),
            "images": len(self.labels),
        }


class BrightnessTask(BaseTask):
    name = "brightness"
    families = ("toy-net",)
    data_formats = ("npz-file",)
    quality = QualityMetric("hit_rate", "hit rate")
    gate_metrics = ("hit_rate",)

    def data_problem(self, data_format: str, path: Path) -> str | None:
        return None if path.is_file() and path.suffix == ".npz" else "is not an .npz file"

    def stages(self) -> Mapping[str, Any]:
        return {"data": data_stage, "train": train_stage, "export": export_stage}

    def search_space(self, ctx, device) -> ToySpace:
        return ToySpace(ctx)

    def calibration(self, ctx, count: int) -> np.ndarray:
        return _preprocess(_split(ctx, "train")[0][:count])

    def evaluator(self, ctx, model_dir: Path) -> Evaluator:
        return HitRate(ctx, self.quality, model_dir)

    def load_trained(self, folder: Path):
        import torch

        model = _network(read_record(TrainedModel, folder).shape["width"])
        model.load_state_dict(torch.load(folder / "best.pt", weights_only=True))
        return model.eval()


# ----------------------------------------------------------------------------- the toy engine
class _OrtPredictor(Predictor):
    def __init__(self, path: Path, threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.session.get_inputs()[0].name: batch})


class ToyRuntime(BaseCompiler):
    capabilities = Capabilities(
        engine="toyrt",
        precisions={"none": frozenset({"fp32"})},
        dynamic_batch=True,
        packages=("onnxruntime",),
        distributions=("onnxruntime",),
    )

    def build(self, request: BuildRequest) -> dict:
        request.out_dir.mkdir(parents=True, exist_ok=True)
        path = request.out_dir / "model.onnx"
        shutil.copy2(request.onnx_path, path)
        manifest = {
            "engine": "toyrt",
            "precision": request.target.precision,
            "file": path.name,
            "sha256": file_sha256(path),
            "bytes": path.stat().st_size,
        }
        write_json(request.out_dir / "artifact.json", manifest)
        return manifest

    def load(self, artifact_dir: Path, threads: int | None = None) -> Predictor:
        return _OrtPredictor(artifact_dir / "model.onnx", threads)


TOY_TASK, TOY_ENGINE = BrightnessTask(), ToyRuntime()


def register() -> None:
    register_task(TOY_TASK)
    register_engine(TOY_ENGINE)


if __name__ in os.environ.get(PLUGINS_ENV, "").split(","):  # a bench worker process
    register()


# ----------------------------------------------------------------------------- the test
PROJECT = """\
name: bright
task: brightness
data: {{path: images.npz, format: npz-file, image_size: 8}}
search: {{families: [{family}], levels: [xs], trials: 2, epochs: 1}}
train: {{runner: toy-box}}
targets:
  - {{name: toy, runner: toy-box, engine: toyrt, precision: fp32,
     constraints: {{latency_ms: 1000, min_accuracy: 0.75}}}}
"""

RUNNER = """\
name: toy-box
description: this host, running the toy engine
labels: [self-hosted]
hardware: {cpu: any, arch: x86_64, cores: 1, memory_mb: 1024, accelerator: {kind: none}}
os: {name: linux}
engines: [{name: toyrt}]
precisions: [fp32]
"""


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch):
    register()
    monkeypatch.setenv(PLUGINS_ENV, __name__)
    monkeypatch.chdir(REPO)  # the bench worker imports this module by name
    yield
    TASKS.unregister("brightness")
    ENGINES.unregister("toyrt")


def _repo(root: Path, family: str = "toy-net") -> Path:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    shutil.copytree(REPO / "schemas", root / "schemas")
    (root / "runners").mkdir()
    (root / "runners" / "toy-box.yaml").write_text(RUNNER)
    project = root / "projects" / "bright"
    project.mkdir(parents=True)
    (project / "project.yaml").write_text(PROJECT.format(family=family))
    rng = np.random.default_rng(0)
    labels = np.tile([0, 1], 24)
    images = np.where(labels[:, None, None, None] == 1, 200, 40) + rng.integers(
        -30, 30, (48, SIZE, SIZE, 3)
    )
    np.savez(project / "images.npz", images=images.astype(np.uint8), labels=labels)
    return project


def test_a_plug_in_task_and_engine_validate_and_run_every_stage(tmp_path, plugins) -> None:
    from tango_ci import api

    project = _repo(tmp_path / "repo")
    assert api.validate([project / "project.yaml"], tmp_path / "repo") == []
    run = api.run(project)
    model = read_json(run.root / "train" / "model.json")
    assert (model["task"], model["family"]) == ("brightness", "toy-net")
    artifact = read_json(run.root / "compile" / "toy" / "artifact.json")
    assert artifact["engine"] == "toyrt"
    metrics = read_json(run.root / "bench" / "toy" / "metrics.json")
    assert metrics["quality"]["label"] == "hit rate" and metrics["quality"]["value"] >= 0.75
    assert metrics["quality"]["drop"] == pytest.approx(0.0, abs=1e-6)  # same network
    assert (metrics["quality"]["split"], metrics["quality"]["images"]) == ("test", 12)
    decision = read_json(run.root / "gate" / "decision.json")
    assert decision["passed"], decision
    report = (run.root / "report" / "report.md").read_text()
    assert "gets toy-net-w" in report and "as toyrt fp32: hit rate" in report
    assert "on the test split, 12 images, unseen by search and training" in report


def test_a_plug_in_task_is_checked_like_a_built_in_one(tmp_path, plugins) -> None:
    from tango_ci import api

    project = _repo(tmp_path / "repo", family="resnet")
    [problem] = api.validate([project / "project.yaml"], tmp_path / "repo")
    assert problem.field == "search.families[0]"
    assert "'resnet' is not a brightness family; use toy-net" in problem.message


def test_without_the_plug_in_the_names_are_unknown(tmp_path) -> None:
    from tango_ci import api

    project = _repo(tmp_path / "repo")
    problems = api.validate([project / "project.yaml"], tmp_path / "repo")
    assert {p.field for p in problems} >= {"task", "targets[0].engine"}
