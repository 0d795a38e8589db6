"""The classification evaluator scores on the test split (the validation split when the run
has none), and its PyTorch reference is the given network on the same images."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tango_ci.plugins import get_task
from tango_ci.rundir import RunDir, write_json, write_record

SIZE = 32


@pytest.fixture
def run(tmp_path: Path) -> RunDir:
    """A run whose trained network is right on every validation image and wrong on every test
    image: the two splits give it different accuracies."""
    import torch

    from tango_ci.data.dataset import preprocess
    from tango_ci.models import build_model, trained_model

    torch.manual_seed(0)
    run = RunDir(tmp_path / "run")
    train, data = run.stage_dir("train"), run.stage_dir("data")
    train.mkdir(parents=True)
    data.mkdir()
    classes = ["a", "b", "c"]
    model = build_model("resnet", "xs", len(classes)).eval()
    torch.save(model.state_dict(), train / "best.pt")
    write_record(train, trained_model("classification", "resnet", "xs", classes, SIZE))
    images = np.random.default_rng(0).integers(0, 256, (12, SIZE, SIZE, 3), dtype=np.uint8)
    with torch.no_grad():
        predicted = model(torch.from_numpy(preprocess(images))).argmax(1).numpy()
    np.savez(data / "val.npz", images=images, labels=predicted)
    np.savez(data / "test.npz", images=images[:8], labels=(predicted[:8] + 1) % len(classes))
    write_json(data / "classes.json", classes)
    return run


def _evaluator(run: RunDir):
    return get_task("classification").evaluator(SimpleNamespace(run=run), run.model_dir("cpu"))


def test_the_reference_is_the_network_on_the_test_split(run: RunDir) -> None:
    evaluator = _evaluator(run)
    assert (evaluator.split, evaluator.size) == ("test", 8)
    assert evaluator.reference == 0.0  # on the validation split it would be 1.0
    assert evaluator.reference_metrics == {"accuracy": 0.0}


def test_without_a_test_split_the_evaluator_reads_the_validation_split(run: RunDir) -> None:
    (run.stage_dir("data") / "test.npz").unlink()
    evaluator = _evaluator(run)
    assert (evaluator.split, evaluator.size) == ("val", 12)
    assert evaluator.reference == 1.0
