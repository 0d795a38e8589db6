"""Weights files are data: a pickle that would run code is never unpickled, by us or by
ultralytics, while checkpoints ultralytics itself saved keep loading."""

from __future__ import annotations

import fractions
import os
from pathlib import Path

import pytest
import torch

from tango_ci.detection.weights import UnsafeWeights, check_pretrained, restricted_load
from tango_ci.train.checkpoints import CheckpointError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class _Evil:
    marker: Path

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil(path: Path, marker: Path) -> Path:
    evil = _Evil()
    evil.marker = marker
    torch.save({"model": evil}, path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A real ultralytics checkpoint pair (best.pt, last.pt) from one tiny epoch."""
    from tango_ci.data.synth import SynthRequest, synthesize
    from tango_ci.detection.models import model_yaml, write_model_yaml
    from tango_ci.detection.train import train_yolo
    from tango_ci.detection.ultralytics_env import prepare_environment

    root = tmp_path_factory.mktemp("yolo")
    prepare_environment(root / "config")
    synthesize(SynthRequest(out=root / "data", task="detection", images_per_class=4, size=64))
    yaml_path = write_model_yaml(root / "model.yaml", model_yaml("yolov8", "n", 0.33, 0.25, 3))
    result = train_yolo(
        yaml_path,
        root / "data" / "data.yaml",
        root / "run",
        epochs=1,
        imgsz=64,
        batch=8,
        lr0=0.01,
        seed=0,
    )
    return {"root": root, "yaml": yaml_path, **result}


def test_official_checkpoint_loads_restricted(trained: dict) -> None:
    checked = check_pretrained(trained["best"])
    assert checked.tensors > 100
    checkpoint = restricted_load(trained["last"])
    assert {"model", "ema", "optimizer", "train_args"} <= set(checkpoint)


def test_evil_pretrained_is_refused_by_name(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = _evil(tmp_path / "evil.pt", marker)
    with pytest.raises(UnsafeWeights) as caught:
        check_pretrained(path)
    assert caught.value.message == (
        f"{path}: refers to 'posix.system', which a weights file may not hold; it was not loaded"
    )
    assert not marker.exists()


def test_ultralytics_own_loader_is_restricted(tmp_path: Path) -> None:
    """YOLO('evil.pt') inside our process goes through the allow-list too."""
    from tango_ci.detection.weights import ultralytics_module

    marker = tmp_path / "PWNED"
    path = _evil(tmp_path / "evil.pt", marker)
    with pytest.raises(UnsafeWeights):
        ultralytics_module().YOLO(str(path), task="detect")
    assert not marker.exists()


def test_harmless_but_unlisted_global_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fraction.pt"
    torch.save({"model": fractions.Fraction(1, 3)}, path)
    with pytest.raises(UnsafeWeights) as caught:
        restricted_load(path)
    assert caught.value.message == (
        f"{path}: refers to 'fractions.Fraction', which a weights "
        "file may not hold; it was not loaded"
    )


def test_random_bytes_are_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "noise.pt"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(UnsafeWeights) as caught:
        restricted_load(path)
    assert caught.value.message.startswith(f"{path}: not a PyTorch checkpoint (zip) file (")


def test_training_refuses_evil_pretrained_before_any_work(trained: dict, tmp_path: Path) -> None:
    from tango_ci.detection.train import train_yolo

    marker = tmp_path / "PWNED"
    path = _evil(tmp_path / "evil.pt", marker)
    with pytest.raises(UnsafeWeights):
        train_yolo(
            trained["yaml"],
            trained["root"] / "data" / "data.yaml",
            tmp_path / "run",
            epochs=1,
            imgsz=64,
            batch=8,
            lr0=0.01,
            seed=0,
            pretrained=path,
        )
    assert not marker.exists()
    assert not (tmp_path / "run").exists()


def test_planted_detection_checkpoint_is_refused_before_resume(
    trained: dict, tmp_path: Path
) -> None:
    from tango_ci.detection.train import train_yolo

    marker = tmp_path / "PWNED"
    last = tmp_path / "run" / "weights" / "last.pt"
    last.parent.mkdir(parents=True)
    _evil(last, marker)
    with pytest.raises(CheckpointError) as caught:
        train_yolo(
            trained["yaml"],
            trained["root"] / "data" / "data.yaml",
            tmp_path / "run",
            epochs=1,
            imgsz=64,
            batch=8,
            lr0=0.01,
            seed=0,
        )
    assert caught.value.message == (
        f"{last}: no recorded sha256 beside it, so it was not "
        "written by this run; delete it to train from the start"
    )
    assert not marker.exists()


def test_saved_detection_checkpoint_has_its_hash_recorded(trained: dict) -> None:
    from tango_ci.train.checkpoints import verify

    verify(trained["last"])  # what ultralytics wrote is what a resume accepts
