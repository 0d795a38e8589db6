"""Training through ultralytics: one ``on_epoch`` per trained epoch, never one for its final
validation of best.pt; that validation, the epoch best.pt holds and how ultralytics measured
are kept apart in the result."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tango_ci.detection.train import (
    BEST_EPOCH,
    MAP50,
    MAP50_95,
    EpochListener,
    read_best_epoch,
)
from tango_ci.progress import Task


class _Trainer(SimpleNamespace):
    """The attributes of ultralytics' trainer the listener reads."""


def _drive(listener: EpochListener, fitness: list[float], tmp_path: Path) -> None:
    """What ultralytics' trainer calls, in its order, for ``len(fitness)`` epochs."""
    trainer = _Trainer(
        epoch=0,
        metrics={},
        best_fitness=None,
        fitness=None,
        last=tmp_path / "last.pt",
        best=tmp_path / "best.pt",
    )
    for epoch, value in enumerate(fitness):
        trainer.epoch = epoch
        listener.train_epoch_end(trainer)
        trainer.metrics = {MAP50: value, MAP50_95: value / 2}  # validate()
        trainer.fitness = value
        trainer.best_fitness = (
            value if trainer.best_fitness is None else max(trainer.best_fitness, value)
        )
        listener.model_saved(trainer)
        listener.fit_epoch_end(trainer)
    trainer.metrics = {MAP50: 0.9, MAP50_95: 0.45}  # final_eval(): best.pt, epoch one past
    trainer.epoch += 1
    listener.fit_epoch_end(trainer)
    trainer.epoch -= 1


def test_final_validation_is_not_an_epoch(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("tango_ci.detection.train.validation_protocol", lambda t: {})
    calls: list[tuple[int, float]] = []
    listener = EpochListener(tmp_path, Task(), lambda e, m: calls.append((e, m[MAP50])))
    _drive(listener, [0.1, 0.3, 0.2], tmp_path)
    assert calls == [(0, 0.1), (1, 0.3), (2, 0.2)]  # 3 epochs, 3 rows (it was 4)
    assert listener.final == {
        "weights": "best.pt",
        "map50": 0.9,
        "map50_95": 0.45,
        "precision": 0.0,
        "recall": 0.0,
    }


def test_best_epoch_is_the_one_ultralytics_saved(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("tango_ci.detection.train.validation_protocol", lambda t: {})
    _drive(EpochListener(tmp_path, Task(), None), [0.2, 0.5, 0.1, 0.5], tmp_path)
    # ultralytics rewrites best.pt on a tie, so the later of two equal epochs holds it
    assert read_best_epoch(tmp_path, 4) == 3
    assert read_best_epoch(tmp_path, 3) is None  # not an epoch of this history
    (tmp_path / BEST_EPOCH).write_text(json.dumps({"epoch": "3"}))
    assert read_best_epoch(tmp_path, 4) is None


def test_every_callback_is_registered_once() -> None:
    events: list[str] = []
    model = SimpleNamespace(add_callback=lambda event, function: events.append(event))
    EpochListener(Path("."), Task(), None).attach(model, lambda trainer: None)
    assert sorted(events) == sorted(set(events))  # a resume once logged each epoch twice


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory) -> Path:
    from tango_ci.data.synth import SynthRequest, synthesize
    from tango_ci.detection.ultralytics_env import prepare_environment

    root = tmp_path_factory.mktemp("yolo-train")
    prepare_environment(root / "config")
    synthesize(
        SynthRequest(out=root / "data", task="detection", images_per_class=4, size=32, seed=0)
    )
    return root / "data" / "data.yaml"


def _train(data_yaml: Path, out: Path, on_epoch, epochs: int = 2) -> dict:
    from tango_ci.detection.models import model_yaml, write_model_yaml
    from tango_ci.detection.train import train_yolo
    from tango_ci.train.device import TrainDevice

    yaml_path = write_model_yaml(
        out.parent / "model.yaml", model_yaml("yolov8", "n", 0.33, 0.25, 3)
    )
    return train_yolo(
        yaml_path,
        data_yaml,
        out,
        epochs=epochs,
        imgsz=32,
        batch=8,
        lr0=0.01,
        seed=0,
        device=TrainDevice(kind="cpu", threads=1),
        on_epoch=on_epoch,
    )


def test_one_row_per_trained_epoch(data_yaml: Path, tmp_path: Path) -> None:
    epochs: list[int] = []
    result = _train(data_yaml, tmp_path / "run", lambda e, m: epochs.append(e))
    assert epochs == [0, 1]
    assert [h["epoch"] for h in result["history"]] == [0, 1]
    assert result["best_epoch"] in (0, 1)
    assert result["final"] is not None and result["final"]["weights"] == "best.pt"
    validation = result["validation"]
    assert validation["evaluator"] == "ultralytics DetectionValidator"
    assert validation["split"] == "val" and validation["nms"] == "multi-label"
    # rectangular validation batches pad half a stride: 32 px images run on a 64 px canvas
    assert validation["image_size"] == 32 and validation["input_shapes"] == [[64, 64]]


def test_resumed_training_reports_each_epoch_once(data_yaml: Path, tmp_path: Path) -> None:
    class Killed(Exception):
        pass

    def kill_after_first(epoch: int, metrics: dict) -> None:
        raise Killed

    out = tmp_path / "run"
    with pytest.raises(Killed):
        _train(data_yaml, out, kill_after_first, epochs=3)
    epochs: list[int] = []
    result = _train(data_yaml, out, lambda e, m: epochs.append(e), epochs=3)
    assert result["resumed"]
    assert epochs == [1, 2]
    assert len(result["history"]) == 3
