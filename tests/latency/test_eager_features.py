"""PyTorch eager's feature set: what the ONNX graph hides from a model of eager PyTorch (the
BatchNorm the export folded, the convolutions PyTorch hands to oneDNN, the weights oneDNN
reorders on each call), read from the same ONNX file; a model remembers the set it was fitted
on, and earlier measurements are read again with a new set without timing anything."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tango_ci.export import export_onnx
from tango_ci.latency import LatencyModel, LatencyModelError, Sample, load_model, write_model
from tango_ci.latency._boosted import EAGER_SUMMARY, SUMMARY, BoostedKernels
from tango_ci.latency.features import (
    ONEDNN_INPUT,
    FeatureError,
    feature_set,
    kernels,
    network_features,
)
from tango_ci.latency.model import fit
from tests.latency.helpers import TAILS

SIZE = 32


class _Eager(nn.Module):
    """conv+BN+ReLU (folded by the export) -> squeeze-excitation whose 1x1-pixel convolutions
    have biases of their own -> a head convolution with its own bias (no BatchNorm)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16))
        self.squeeze = nn.Conv2d(16, 4, 1)
        self.excite = nn.Conv2d(4, 16, 1)
        self.head = nn.Conv2d(16, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.stem(x))
        scale = torch.sigmoid(self.excite(torch.relu(self.squeeze(y.mean((2, 3), keepdim=True)))))
        return self.head(y * scale)


@pytest.fixture(scope="module")
def eager_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = _Eager().eval()
    with torch.no_grad():  # a BatchNorm that is not the identity, so folding makes a bias
        model.stem[1].running_mean.uniform_(-1, 1)
        model.stem[1].running_var.uniform_(0.5, 2)
    path = tmp_path_factory.mktemp("eager") / "eager.onnx"
    export_onnx(model, path, (1, 3, SIZE, SIZE))
    return path


def test_batchnorm_is_counted_after_each_folded_convolution_only(eager_onnx: Path) -> None:
    onnx_set = kernels(eager_onnx)
    eager = kernels(eager_onnx, features="pytorch-eager-1t")
    assert not [k for k in onnx_set if k.key == "batchnormalization"]
    norms = [k for k in eager if k.key == "batchnormalization"]
    # the stem's (16 x 32 x 32 read and written) and the head's, whose own bias looks the same;
    # never the squeeze-excitation's, whose output is one pixel
    assert [n.elems for n in norms] == [2 * 16 * SIZE * SIZE, 2 * 5 * SIZE * SIZE]
    unfused = [k.key.removesuffix("-fused") for k in onnx_set]  # eager runs each on its own
    assert [k.key for k in eager if k.key != "batchnormalization"] == unfused
    assert "relu-fused" in [k.key for k in onnx_set]


def test_eager_convolutions_count_the_weights_they_reorder(eager_onnx: Path) -> None:
    onnx_stem = kernels(eager_onnx)[0]
    eager_stem = kernels(eager_onnx, features="pytorch-eager-1t")[0]
    assert eager_stem.macs == onnx_stem.macs
    assert eager_stem.elems == onnx_stem.elems + 16 * 3 * 3 * 3


def _onednn(conv: nn.Conv2d, shape: tuple[int, ...]) -> bool:
    """Whether PyTorch eager runs ``conv`` on oneDNN for an input of ``shape`` (its profiler
    names the kernel it ran)."""
    with torch.inference_mode(), torch.profiler.profile() as profile:
        conv(torch.zeros(shape))
    return any("mkldnn" in event.name for event in profile.events())


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    ("channels", "kernel", "stride", "dilation", "size", "batch"),
    [
        (8, 3, 1, 1, 50, 1),  # 20000 input elements: PyTorch's own im2col
        (8, 3, 1, 1, 51, 1),  # 20808: oneDNN
        (8, 3, 2, 1, 60, 1),
        (4, 3, 1, 1, 20, 2),  # a batch of two: oneDNN however small
        (8, 1, 2, 1, 60, 1),  # strided 1x1: oneDNN
        (64, 1, 1, 1, 64, 1),  # 1x1 stride 1, 262144 elements: GEMM on one thread only
        (8, 1, 1, 1, 8, 2),  # a batch of two 1x1: GEMM on one thread only
        (16, 5, 1, 1, 8, 1),  # 5x5: oneDNN however small
        (8, (1, 5), 1, 1, 8, 1),  # 1x5 is not over 3 both ways: GEMM
        (8, 3, 1, 2, 16, 1),  # dilated but small: GEMM
        (8, 3, 1, 2, 60, 1),
    ],
)
def test_convbig_is_exactly_where_pytorch_runs_onednn(
    channels: int,
    kernel: int | tuple[int, int],
    stride: int,
    dilation: int,
    size: int,
    batch: int,
    threads: int,
    tmp_path: Path,
) -> None:
    conv = nn.Conv2d(channels, 16, kernel, stride, 0, dilation, bias=False).eval()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ran = _onednn(conv, (batch, channels, size, size))
    finally:
        torch.set_num_threads(before)
    path = tmp_path / "conv.onnx"
    export_onnx(conv, path, (1, channels, size, size))
    [found] = kernels(path, batch, features=feature_set("pytorch", threads))
    assert found.kind == ("convbig" if ran else "conv")
    [plain] = kernels(path, batch, features=feature_set("onnxruntime", threads))
    assert plain.kind == "conv"  # other engines' keys are unchanged
    # the first approximation stays as models fitted on it were
    [first] = kernels(path, batch, features="pytorch-eager")
    assert (first.kind == "convbig") == (batch > 1 or channels * size * size > ONEDNN_INPUT)


def test_an_unknown_feature_set_is_refused(eager_onnx: Path) -> None:
    with pytest.raises(FeatureError, match="unknown feature set 'tflite'"):
        kernels(eager_onnx, features="tflite")


def _eager_networks(count: int) -> list[Sample]:
    """Eager PyTorch networks whose BatchNorm costs what the sum of convolutions cannot see."""
    rng = np.random.default_rng(3)
    found = []
    for _ in range(count):
        conv, norms = float(rng.uniform(1, 40)), float(rng.integers(2, 30))
        features = {
            "conv-k3-s1": [float(rng.integers(2, 20)), conv, conv / 10],
            "convbig-k3-s1": [float(rng.integers(0, 5)), conv / 2, conv / 20],
            "batchnormalization": [norms, 0.0, norms / 4],
        }
        found.append(Sample(features, 0.1 + 0.05 * conv + 0.14 * norms))
    return found


def test_a_model_predicts_with_the_set_it_was_fitted_on(eager_onnx: Path, tmp_path: Path) -> None:
    predictor = fit("kernel-regression", _eager_networks(30), [])
    model = LatencyModel(
        "r", "pytorch", "fp32", 1, predictor, dict(TAILS), {"feature_set": "pytorch-eager"}
    )
    path = tmp_path / "pytorch-fp32.json"
    write_model(path, model)
    loaded = load_model(path)
    eager = loaded.predict_features(network_features(eager_onnx, 1, None, "pytorch-eager"))
    plain = loaded.predict_features(network_features(eager_onnx))
    assert loaded.predict(eager_onnx)["p50_ms"] == eager["p50_ms"] != plain["p50_ms"]
    # a model from before the feature sets reads the ONNX graph as it was fitted
    older = LatencyModel("r", "pytorch", "fp32", 1, predictor, dict(TAILS), {})
    assert older.predict(eager_onnx)["p50_ms"] == plain["p50_ms"]


def test_a_model_naming_an_unknown_feature_set_is_refused(tmp_path: Path) -> None:
    predictor = fit("kernel-regression", _eager_networks(30), [])
    path = tmp_path / "pytorch-fp32.json"
    write_model(path, LatencyModel("r", "pytorch", "fp32", 1, predictor, dict(TAILS), {}))
    data = json.loads(path.read_text())
    data["metadata"]["feature_set"] = "tflite"
    path.write_text(json.dumps(data))
    with pytest.raises(LatencyModelError, match="feature_set"):
        load_model(path)


def test_boosted_trees_of_eager_networks_read_the_longer_summary(tmp_path: Path) -> None:
    data = _eager_networks(60)
    eager = BoostedKernels(depth=3)
    eager.fit(data, [])
    assert eager.parameters()["summary"] == list(EAGER_SUMMARY)
    plain = BoostedKernels(depth=3)
    plain.fit([Sample({"conv-k3-s1": s.features["conv-k3-s1"]}, s.p50_ms) for s in data], [])
    assert plain.parameters()["summary"] == list(SUMMARY)
    for predictor in (eager, plain):
        path = tmp_path / "m.json"
        write_model(path, LatencyModel("r", "pytorch", "fp32", 1, predictor, dict(TAILS), {}))
        loaded = load_model(path)
        for sample in data[:5]:
            features = sample.features if predictor is eager else {"conv-k3-s1": [1.0, 2.0, 0.1]}
            assert loaded.predictor.predict(features) == predictor.predict(features)


@pytest.mark.parametrize(
    ("kind", "name"), [("yolo", "yolov8"), ("yolo", "yolo11"), ("family", "mobilenet"),
                       ("family", "resnet"), ("subnet", "")]
)  # fmt: skip
def test_the_eager_reading_has_a_kernel_for_each_operator_pytorch_runs(
    kind: str, name: str, tmp_path: Path
) -> None:
    """What PyTorch's profiler says eager ran, operator by operator: one SiLU where the graph
    has x * sigmoid(x), a BatchNorm after each convolution but a detection head's, one concat
    per torch.cat (not the dynamic-batch reshapes' shape arithmetic). DenseNet is left out:
    its torch.cat of a single tensor leaves no node in the graph."""
    from collections import Counter

    from tango_ci.detection.stages import load_yolo_module
    from tango_ci.plugins import get_task
    from tango_ci.profiling.networks import write_sample
    from tango_ci.profiling.sample import design

    sample = min(
        (
            s
            for s in design(blocks=0, networks=120, with_yolo=True)
            if s.spec["kind"] == kind and s.describe().startswith(name)
        ),
        key=lambda s: s.size,
    )
    onnx_path, folder = write_sample(sample, tmp_path)
    assert folder is not None
    module = (
        load_yolo_module(folder)
        if kind == "yolo"
        else get_task("classification").load_trained(folder)
    ).eval()
    image = torch.zeros(1, 3, sample.size, sample.size)
    with torch.inference_mode():
        module(image)  # a detection head makes its anchors once per image size
        with torch.profiler.profile() as profile:
            module(image)
    ran = Counter(
        e.name.removeprefix("aten::").rstrip("_")
        for e in profile.events()
        if e.cpu_parent is None and e.name.startswith("aten::")
    )
    read = Counter(k.kind for k in kernels(onnx_path, 1, sample.size, "pytorch-eager-1t"))
    assert read["conv"] + read["convbig"] + read["dwconv"] + read["gconv"] == ran["conv2d"]
    assert read["batchnormalization"] == ran["batch_norm"]
    assert read["silu"] == ran["silu"]
    assert read["concat"] == ran["cat"]
    assert read["sigmoid"] == ran["sigmoid"] and read["mul"] == ran["mul"]
    assert read["add"] == ran["add"]


def test_the_schema_knows_every_feature_set() -> None:
    from tango_ci.contracts import schema_file
    from tango_ci.latency.features import FEATURE_SETS

    schema = json.loads(schema_file("latency-model.schema.json").read_text())
    assert schema["properties"]["metadata"]["properties"]["feature_set"]["enum"] == list(
        FEATURE_SETS
    )
