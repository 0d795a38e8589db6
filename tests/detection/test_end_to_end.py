"""Detection through the whole pipeline on a tiny dataset, with the network forbidden."""

from __future__ import annotations

import ipaddress
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from tango_ci import api
from tango_ci.rundir import read_json
from tests.conftest import REPO, git

pytestmark = pytest.mark.slow

PROJECT = """\
name: tiny-det
task: detection
data:
  path: data
  format: yolo
  image_size: 32
  synth: {images_per_class: 4, size: 32, seed: 0}
search: {families: [yolov8], levels: [xs], trials: 1, epochs: 1, image_sizes: [32]}
train: {epochs: 1, batch: 8}
targets:
  - name: cpu-fp32
    runner: local-cpu
    engine: onnxruntime
    precision: fp32
    constraints: {max_accuracy_drop: 0.005}
  - name: cpu-int8
    runner: local-cpu
    engine: onnxruntime
    precision: int8
    constraints: {max_accuracy_drop: 1.0}
"""


def _loopback(host: str) -> bool:
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every attempt to resolve or reach a non-loopback address is refused and recorded."""
    attempts: list[str] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if not _loopback(host if isinstance(host, str) else str(host)):
            attempts.append(f"resolve {host}")
            raise OSError(f"network access attempted: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if isinstance(address, tuple) and not _loopback(str(address[0])):
            attempts.append(f"connect {address[0]}")
            raise OSError(f"network access attempted: {address[0]}")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


def test_detection_pipeline_offline(tmp_path: Path, no_network: list[str]) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    shutil.copytree(REPO / "runners", root / "runners")
    (root / "projects" / "tiny-det").mkdir(parents=True)
    (root / "projects" / "tiny-det" / "project.yaml").write_text(PROJECT)
    run = api.run(root / "projects" / "tiny-det", bench_seconds=1).root
    assert no_network == []  # ultralytics never touched the network

    data = read_json(run / "data" / "manifest.json")["summary"]
    assert data["classes"] == ["circle", "square", "triangle"]
    assert data["images"] == {"train": 8, "val": 2, "test": 2}  # 15% of 10 held out
    model = read_json(run / "train" / "model.json")
    assert model["task"] == "detection" and model["image_size"] == 32
    parity = read_json(run / "export" / "parity.json")
    assert parity["max_abs"] <= parity["tolerance"] == 1e-4  # absolute, boxes / input size
    assert parity["max_abs_raw"] >= parity["max_abs"]
    epochs = (run / "search" / "epochs.jsonl").read_text().splitlines()
    assert len(epochs) == 1  # one trial of one epoch; ultralytics' final validation is no row
    fp32 = read_json(run / "bench" / "cpu-fp32" / "metrics.json")
    int8 = read_json(run / "bench" / "cpu-int8" / "metrics.json")
    for metrics in (fp32, int8):
        scores, quality = metrics["task_metrics"], metrics["quality"]
        assert (quality["name"], quality["label"]) == ("map50", "mAP50")
        assert quality["value"] == scores["map50"] and "accuracy" not in scores
        assert 0.0 <= scores["map50_95"] <= scores["map50"] <= 1.0
        assert scores["timing"]["postprocess_ms_per_image"] > 0
        assert metrics["latency"]["p50_ms"] > 0
        assert set(metrics["reference_metrics"]) >= {"map50", "map50_95"}
        assert (quality["split"], quality["images"]) == ("test", 2)
    assert abs(fp32["quality"]["drop"]) <= 0.005  # onnxruntime fp32 matches PyTorch's mAP
    assert int8["build"]["quantization"]["format"] == "QDQ"
    report = (run / "report" / "report.md").read_text()
    assert "| class | AP50 | AP50-95 | precision | recall | instances |" in report
    assert "validation mAP50 " in report and "accuracy" not in report.lower()
    for image in ("pr-cpu-fp32.png", "boxes-cpu-fp32.png", "latency-cpu-int8.png"):
        assert (run / "report" / image).stat().st_size > 1000
    _bundle_scores_as_bench(root / "projects" / "tiny-det", run, fp32, tmp_path / "bundle")


def _bundle_scores_as_bench(project: Path, run: Path, metrics: dict, out: Path) -> None:
    """The deployment bundle, fed the original image files, gives bench's mAP (within 0.001):
    the same letterbox, the same network and the same decoding at the same thresholds."""
    from tango_ci.detection.data_stage import load_images
    from tango_ci.detection.metrics import detection_metrics
    from tango_ci.detection.postprocess import Thresholds, decode
    from tango_ci.rundir import RunDir
    from tango_ci.runtime import Bundle
    from tango_ci.runtime.images import fit, read_rgb, to_input

    api.deploy_run(project, "cpu-fp32", out, run.name)
    bundle = Bundle(out)
    assert bundle.postprocess["thresholds"] == {"conf": 0.25, "iou": 0.7, "max_det": 100}
    _, truths, files = load_images(RunDir(run), "test")
    limits = api.load_project(project).detection
    thresholds = Thresholds(conf=limits.conf, iou=limits.iou, max_det=limits.max_det)
    predictions = []
    for file in files:
        fitted, _ = fit(read_rgb(str(project / "data" / file)), bundle.preprocess)
        raw = bundle.run(to_input(fitted[None], bundle.preprocess))
        predictions += decode(np.asarray(raw[0]), thresholds)
    scores = detection_metrics(predictions, truths, bundle.labels)
    assert abs(scores["map50"] - metrics["task_metrics"]["map50"]) <= 0.001
    answers = bundle.predict_files([project / "data" / f for f in files])
    assert len(answers) == len(files) and all("boxes" in a for a in answers)
