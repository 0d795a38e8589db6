"""Where training runs: device resolution, the refusal of a GPU the host lacks, reproducible
batches whatever the loader workers, and (on a GPU machine) mixed-precision training on CUDA."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tango_ci.exceptions import TangoError
from tango_ci.train.device import DeviceUnavailable, TrainDevice, resolve_device
from tango_ci.train.loader import BatchLoader
from tango_ci.train.trainer import TrainConfig, evaluate, train_model
from tests.conftest import MINIMAL_PROJECT, write_project
from tests.hostile.conftest import refused, tango

CUDA = torch.cuda.is_available()
_NO_CUDA = "no CUDA GPU on this host (scripts/gpu-check.sh runs these on a GPU machine)"


@pytest.mark.skipif(CUDA, reason="this host has CUDA; auto means cuda here")
def test_auto_without_cuda_is_the_cpu() -> None:
    device = resolve_device("auto")
    assert (device.kind, device.torch, device.ultralytics, device.precision) == (
        "cpu",
        "cpu",
        "cpu",
        "fp32",
    )
    assert device.threads >= 1 and device.amp_dtype is None


@pytest.mark.skipif(CUDA, reason="this host has CUDA")
@pytest.mark.parametrize("requested", ["cuda", "cuda:1"])
def test_cuda_without_cuda_names_the_runner_and_the_field(requested: str) -> None:
    with pytest.raises(DeviceUnavailable) as caught:
        resolve_device(requested, runner="gpu-server", where="projects/x/project.yaml: ")
    assert caught.value.message == (
        f"projects/x/project.yaml: train.device: {requested} requested, but this host has no "
        "usable CUDA device (training runner 'gpu-server'); use auto or cpu, or train on a "
        "host with that GPU"
    )


def test_unknown_device_is_refused() -> None:
    with pytest.raises(
        TangoError, match=re.escape("train.device: 'tpu' is not auto, cpu, cuda or cuda:N")
    ):
        resolve_device("tpu")


@pytest.mark.skipif(CUDA, reason="this host has CUDA")
def test_run_refuses_a_gpu_before_any_work(spec_repo: Path) -> None:
    write_project(spec_repo, "demo", MINIMAL_PROJECT + "train: {device: cuda}\n")
    result = tango("run", "projects/demo", cwd=spec_repo)
    refused(
        result,
        "projects/demo/project.yaml: train.device: cuda requested, but this host "
        "has no usable CUDA device (training runner 'gpu-server'); use auto or cpu, "
        "or train on a host with that GPU",
    )
    assert not (spec_repo / "runs").exists()


def test_spec_refuses_a_device_name(spec_repo: Path) -> None:
    path = write_project(spec_repo, "demo", MINIMAL_PROJECT + "train: {device: gpu0}\n")
    result = tango("validate", str(path), cwd=spec_repo)
    assert result.stdout.splitlines() == [
        "projects/demo/project.yaml:11:17: train.device: 'gpu0' is not auto, cpu, cuda or cuda:N"
    ]


def test_workers_follow_the_device_the_cores_and_the_dataset() -> None:
    assert TrainDevice(kind="cpu", threads=16).loader_workers(1000) == 0  # threads train
    gpu = TrainDevice(kind="cuda", index=0, threads=16)
    assert gpu.loader_workers(batches_per_epoch=4) == 0  # too small to pay for a process
    assert gpu.loader_workers(batches_per_epoch=100) == 8
    assert TrainDevice(kind="cuda", index=0, threads=2).loader_workers(100) == 1
    assert TrainDevice(kind="cpu", threads=2, workers=3).loader_workers(4) == 3  # the spec's


def _data(count: int = 96, size: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count)
    images = np.zeros((count, size, size, 3), np.uint8)
    for index, label in enumerate(labels):  # a bright band whose place is the class
        images[index, :, label * size // 3 : (label + 1) * size // 3] = 220
    images += rng.integers(0, 30, images.shape, dtype=np.uint8)
    return images, labels.astype(np.int64)


def _reference_batches(images, labels, batch, strength, seed, epochs):
    """The stream the trainer drew before loader workers existed, written out plainly."""
    from tango_ci.data.dataset import preprocess

    generator = torch.Generator().manual_seed(seed)
    x_all = torch.from_numpy(preprocess(images))
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), batch):
            index = order[start : start + batch]
            if len(index) < 2:
                continue
            x = x_all[index]
            flip = torch.rand(len(index), generator=generator) < 0.5 * strength
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            shift = max(1, round(x.shape[-1] * 0.125 * strength))
            padded = torch.nn.functional.pad(x, (shift,) * 4, mode="replicate")
            dx, dy = torch.randint(0, 2 * shift + 1, (2,), generator=generator).tolist()
            yield (
                padded[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]],
                torch.from_numpy(labels)[index],
            )


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_are_the_seeds_whatever_the_workers(workers: int) -> None:
    """Same seed, same batches as before loader workers existed (so results do not move)."""
    images, labels = _data(count=97)  # a last batch of one is skipped, as it always was
    loader = BatchLoader(images, labels, batch=16, augment=0.8, seed=3, workers=workers)
    ours = [(x.clone(), y.clone()) for _ in range(2) for x, y in loader.epoch()]
    reference = list(_reference_batches(images, labels, 16, 0.8, 3, epochs=2))
    assert len(ours) == len(reference) == 12
    for (x, y), (x_ref, y_ref) in zip(ours, reference, strict=False):
        assert torch.equal(y, y_ref) and torch.equal(x, x_ref)
    assert not torch.equal(ours[0][0], ours[6][0])  # the second epoch is another order


def test_training_learns_and_returns_to_the_cpu() -> None:
    from tango_ci.models import build_model

    images, labels = _data(count=120)
    model = build_model("resnet", "xs", 3)
    result = train_model(
        model,
        (images[:96], labels[:96]),
        (images[96:], labels[96:]),
        TrainConfig(epochs=4, batch=16, lr=0.01, seed=0),
    )
    assert result.best_accuracy > 0.6
    assert all(v.device.type == "cpu" for v in result.best_state.values())
    assert next(model.parameters()).device.type == "cpu"
    assert result.history[-1]["images_per_s"] > 0


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason=_NO_CUDA)
class TestCuda:
    def test_auto_is_cuda_with_mixed_precision(self) -> None:
        device = resolve_device("auto")
        assert device.kind == "cuda" and device.memory_mb > 0
        assert device.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")

    def test_classification_trains_on_cuda(self) -> None:
        from tango_ci.models import build_model

        images, labels = _data(count=240)
        device = resolve_device("cuda")
        model = build_model("resnet", "xs", 3)
        result = train_model(
            model,
            (images[:192], labels[:192]),
            (images[192:], labels[192:]),
            TrainConfig(epochs=4, batch=32, lr=0.01, seed=0),
            device=device,
        )
        assert result.best_accuracy > 0.6
        assert np.isfinite([h["train_loss"] for h in result.history]).all()
        model.load_state_dict(result.best_state)
        cpu_accuracy, _, _ = evaluate(model, images[192:], labels[192:])
        assert cpu_accuracy == pytest.approx(result.best_accuracy, abs=0.05)

    def test_detection_trains_on_cuda_offline(self, tmp_path: Path) -> None:
        from tango_ci.data.synth import SynthRequest, synthesize
        from tango_ci.detection.models import model_yaml, write_model_yaml
        from tango_ci.detection.train import train_yolo
        from tango_ci.detection.ultralytics_env import prepare_environment

        prepare_environment(tmp_path / "config")
        synthesize(
            SynthRequest(out=tmp_path / "data", task="detection", images_per_class=8, size=64)
        )
        yaml_path = write_model_yaml(tmp_path / "m.yaml", model_yaml("yolov8", "n", 0.33, 0.25, 3))
        result = train_yolo(
            yaml_path,
            tmp_path / "data" / "data.yaml",
            tmp_path / "run",
            epochs=2,
            imgsz=64,
            batch=8,
            lr0=0.01,
            seed=0,
            device=resolve_device("cuda"),
        )
        assert len(result["history"]) == 2
        assert result["best"].is_file()
