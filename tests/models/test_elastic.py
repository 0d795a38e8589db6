"""Weight-sharing families: an extracted subnet computes what the supernet computes, training a
subnet touches only its slice, configs from files are checked, and subnets export to ONNX."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from torch import nn

from tango_ci.exceptions import TangoError, UnknownNameError
from tango_ci.export import export_onnx
from tango_ci.models import (
    ELASTIC_FAMILIES,
    FAMILIES,
    SubnetConfigError,
    count_parameters,
    get_elastic_family,
    recalibrate_batchnorm,
)
from tango_ci.models._elastic import Elastic, ElasticBatchNorm2d, ElasticConv2d

IMAGE_SIZE = 16
RESOLUTIONS = (12, 16)
CLASSES = 3
FAMILY_NAMES = sorted(ELASTIC_FAMILIES)


def _supernet(name: str):
    torch.manual_seed(0)
    return get_elastic_family(name).supernet(CLASSES, IMAGE_SIZE, RESOLUTIONS)


def _randomise_batchnorm(model: nn.Module) -> None:
    """Fresh BatchNorms are the identity in eval mode; random ones make slicing mistakes show."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)


def _configs(space) -> list[dict]:
    rng = random.Random(1)
    sampled = [space.sample(rng) for _ in range(4)] + [space.sample(rng, "depth_width")]
    smaller = dict(space.sample(rng), resolution=min(RESOLUTIONS))
    return [space.largest(), space.smallest(), smaller, *sampled]


def test_registry_lists_the_families_and_refuses_unknown_names() -> None:
    assert FAMILY_NAMES == ["ofa-mobilenetv3", "ofa-resnet"]
    assert not set(ELASTIC_FAMILIES) & set(FAMILIES)
    with pytest.raises(UnknownNameError, match="valid names: ofa-resnet, ofa-mobilenetv3"):
        get_elastic_family("ofa-vgg")


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_extracted_subnets_equal_the_active_supernet(name: str) -> None:
    supernet = _supernet(name).eval()
    _randomise_batchnorm(supernet)
    images = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    configs = _configs(supernet.space)
    assert min(RESOLUTIONS) in {c["resolution"] for c in configs}
    for config in configs:
        supernet.set_active(config)
        subnet = supernet.extract(config).eval()
        with torch.no_grad():
            expected, actual = supernet(images), subnet(images)
        assert actual.shape == (2, CLASSES)
        assert float(expected.abs().max()) > 1e-3  # a real signal, not zeros
        assert float((expected - actual).abs().max()) < 1e-5, supernet.space.key(config)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_subnets_are_plain_torch_and_the_smallest_is_smaller(name: str) -> None:
    supernet = _supernet(name)
    space = supernet.space
    largest, smallest = supernet.extract(space.largest()), supernet.extract(space.smallest())
    assert count_parameters(smallest) < count_parameters(largest)
    assert count_parameters(largest) == count_parameters(supernet)  # no weight is never used
    for subnet in (largest, smallest):
        assert not [m for m in subnet.modules() if isinstance(m, Elastic)]
        holders = {type(m) for m in subnet.modules() if list(m.parameters(recurse=False))}
        assert holders <= {nn.Conv2d, nn.BatchNorm2d, nn.Linear}


def test_extraction_leaves_the_callers_random_state_alone() -> None:
    supernet = _supernet("ofa-resnet")
    state = torch.random.get_rng_state()
    supernet.extract(supernet.space.smallest())
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_training_a_subnet_updates_only_its_batchnorm_slice(name: str) -> None:
    supernet = _supernet(name)
    _randomise_batchnorm(supernet)
    supernet.set_active(supernet.space.smallest())
    seen: dict[nn.Module, int] = {}
    for module in supernet.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.register_forward_hook(
                lambda m, inputs, _: seen.__setitem__(m, inputs[0].shape[1])
            )
    norms = [m for m in supernet.modules() if isinstance(m, nn.BatchNorm2d)]
    before = {m: (m.running_mean.clone(), m.running_var.clone()) for m in norms}
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.1)
    supernet.train()
    loss = nn.functional.cross_entropy(
        supernet(torch.rand(4, 3, IMAGE_SIZE, IMAGE_SIZE)), torch.tensor([0, 1, 2, 0])
    )
    loss.backward()
    optimizer.step()
    assert any(channels < m.num_features for m, channels in seen.items())  # slicing happened
    assert len(seen) < len(norms)  # some blocks were skipped
    for norm in norms:
        mean, var = before[norm]
        active = seen.get(norm, 0)
        assert torch.equal(norm.running_mean[active:], mean[active:])
        assert torch.equal(norm.running_var[active:], var[active:])
        if active:
            assert not torch.equal(norm.running_mean[:active], mean[:active])
            assert not torch.equal(norm.running_var[:active], var[:active])


def test_training_batchnorm_slice_uses_the_batch_statistics_of_its_channels() -> None:
    norm = ElasticBatchNorm2d(8, momentum=1.0).train()
    images = torch.rand(4, 5, 3, 3) * 3 + 1
    out = norm(images)
    assert torch.allclose(norm.running_mean[:5], images.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(5), atol=1e-5)
    assert torch.equal(norm.running_mean[5:], torch.zeros(3))


def test_small_kernels_are_the_centre_of_the_largest() -> None:
    supernet = _supernet("ofa-mobilenetv3")
    config = supernet.space.smallest()  # every kernel 3
    subnet = supernet.extract(config)
    elastic = [m for m in supernet.modules() if isinstance(m, ElasticConv2d) and m.depthwise]
    static = [m for m in subnet.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert static and all(m.kernel_size == (3, 3) for m in static)
    assert elastic[0].weight.shape[-1] == 7
    channels = static[0].weight.shape[0]
    assert torch.equal(static[0].weight, elastic[0].weight[:channels, :, 2:5, 2:5])
    conv = elastic[0]
    conv.active_kernel = 5
    middle = conv.to_static(channels, channels, 5).weight
    assert torch.equal(middle[:, :, 1:4, 1:4], static[0].weight)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_sample_largest_smallest_key_and_features(name: str) -> None:
    space = get_elastic_family(name).space(IMAGE_SIZE, (16, 12, 16))
    assert space.resolutions == (12, 16)
    assert space.sample(random.Random(0), "largest") == space.largest()
    rng = random.Random(3)
    for _ in range(20):
        held = space.sample(rng, "depth_width")
        assert held["resolution"] == 16
        assert all(k == 7 for stage in held.get("kernel", []) for k in stage)
    configs = [space.sample(rng) for _ in range(30)]
    assert len({space.key(c) for c in configs}) > 20
    assert len({c["resolution"] for c in configs}) == 2
    for config in configs:
        assert space.validate(config) == config
        assert len(space.to_features(config)) == len(space.feature_names())
    assert space.key(space.largest()) != space.key(space.smallest())
    assert space.describe(space.smallest()).startswith(f"{name} r12 d")
    with pytest.raises(UnknownNameError, match="largest, depth_width, all"):
        space.sample(rng, "kernel")


def test_resnet_config_form() -> None:
    space = get_elastic_family("ofa-resnet").space(32, (24, 32))
    assert space.dimensions == {
        "resolution": [24, 32],
        "depth": [[1, 2, 3]] * 4,
        "width": [0.5, 0.75, 1.0],
    }
    config = {"resolution": 32, "depth": [2, 2, 3, 1], "width": 0.75}
    assert space.describe(config) == "ofa-resnet r32 d2-2-3-1 w0.75"
    assert space.key(config) == space.key({"width": 0.75, "depth": (2, 2, 3, 1), "resolution": 32})
    assert space.validate({**config, "width": 1}) == {**config, "width": 1.0}
    assert space.to_features(config) == [32.0, 2.0, 2.0, 3.0, 1.0, 0.75]


def _mobilenet_config() -> dict:
    return {
        "resolution": 16,
        "depth": [2, 3, 2, 4],
        "expand": [[3, 4], [6, 6, 3], [4, 4], [3, 4, 6, 3]],
        "kernel": [[3, 5], [7, 7, 3], [5, 5], [3, 3, 7, 5]],
    }


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda c: c.pop("kernel"), "kernel"),
        (lambda c: c.update(extra=1), "extra"),
        (lambda c: c.update(resolution=20), "resolution"),
        (lambda c: c.update(resolution="16"), "resolution"),
        (lambda c: c.update(resolution=True), "resolution"),
        (lambda c: c.update(depth=[2, 3, 2]), "depth"),
        (lambda c: c.update(depth="2324"), "depth"),
        (lambda c: c["depth"].__setitem__(1, 5), "depth[1]"),
        (lambda c: c["depth"].__setitem__(0, 2.0), "depth[0]"),
        (lambda c: c["expand"][1].__setitem__(2, True), "expand[1][2]"),
        (lambda c: c["expand"][1].__setitem__(2, 5), "expand[1][2]"),
        (lambda c: c["kernel"][3].pop(), "kernel[3]"),  # fewer kernels than blocks
        (lambda c: c["kernel"].__setitem__(0, None), "kernel[0]"),
    ],
)
def test_mobilenet_validate_refuses_malformed_configs(change, field: str) -> None:
    space = get_elastic_family("ofa-mobilenetv3").space(IMAGE_SIZE, RESOLUTIONS)
    config = _mobilenet_config()
    assert space.validate(config) == config
    change(config)
    with pytest.raises(SubnetConfigError, match=f"at '{re.escape(field)}'") as raised:
        space.validate(config)
    assert isinstance(raised.value, TangoError)


@pytest.mark.parametrize(
    "config, field",
    [
        ([16, [1, 1, 1, 1], 0.5], "config"),
        ({"resolution": 16, "depth": [1, 1, 1, 1], "width": True}, "width"),
        ({"resolution": 16, "depth": [1, 1, 1, 1], "width": 0.6}, "width"),
        ({"resolution": 16, "depth": [1, 1, 1, 1], "width": "0.5"}, "width"),
        ({"resolution": 16, "depth": [1, 1, 1, 4], "width": 0.5}, "depth[3]"),
    ],
)
def test_resnet_validate_refuses_malformed_configs(config: object, field: str) -> None:
    space = get_elastic_family("ofa-resnet").space(IMAGE_SIZE, RESOLUTIONS)
    with pytest.raises(SubnetConfigError, match=f"at '{re.escape(field)}'"):
        space.validate(config)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_suggest_with_a_real_optuna_trial(name: str) -> None:
    space = get_elastic_family(name).space(IMAGE_SIZE, RESOLUTIONS)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        trial = study.ask()
        config = space.suggest(trial)
        assert space.validate(config) == config
        assert {"resolution", "d0", "d3"} <= set(trial.params)
        study.tell(trial, 0.0)


def test_suggest_names_one_parameter_per_active_block() -> None:
    space = get_elastic_family("ofa-mobilenetv3").space(IMAGE_SIZE, RESOLUTIONS)
    config = _mobilenet_config()
    params = {"resolution": 16, **{f"d{i}": d for i, d in enumerate(config["depth"])}}
    for key, letter in (("expand", "e"), ("kernel", "k")):
        params |= {
            f"{letter}{i}_{j}": v for i, s in enumerate(config[key]) for j, v in enumerate(s)
        }
    assert space.suggest(optuna.trial.FixedTrial(params)) == config


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_extracted_subnet_exports_to_onnx(name: str, tmp_path: Path) -> None:
    import onnxruntime as ort

    supernet = _supernet(name).eval()
    _randomise_batchnorm(supernet)
    config = dict(supernet.space.sample(random.Random(5)), resolution=min(RESOLUTIONS))
    subnet = supernet.extract(config).eval()
    path = tmp_path / "subnet.onnx"
    export_onnx(subnet, path, (1, 3, IMAGE_SIZE, IMAGE_SIZE), opset=17, simplify=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    (actual,) = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    with torch.no_grad():
        expected = subnet(images).numpy()
    assert np.abs(expected - actual).max() < 1e-4


def test_recalibrate_batchnorm_measures_the_data() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4, momentum=0.3), nn.ReLU(),
        nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2),
    )  # fmt: skip
    first = model[1]
    first.running_mean.fill_(5.0)
    images = torch.rand(32, 3, 6, 6) * 2 + 1
    with torch.no_grad():
        features = model[0](images)
    recalibrate_batchnorm(model, images, batch=8)
    assert not model.training and first.momentum == 0.3
    assert torch.allclose(first.running_mean, features.mean(dim=(0, 2, 3)), atol=1e-5)
    per_batch = torch.stack([f.var(dim=(0, 2, 3)) for f in features.split(8)]).mean(0)
    assert torch.allclose(first.running_var, per_batch, atol=1e-5)
    with pytest.raises(TangoError):
        recalibrate_batchnorm(model, images[:0])


def test_recalibrated_subnet_still_matches_after_the_supernet_moved_on() -> None:
    """Recalibration runs on the extracted copy; the supernet's statistics stay as they were."""
    supernet = _supernet("ofa-resnet").eval()
    config = supernet.space.smallest()
    subnet = supernet.extract(config)
    stem = next(m for m in supernet.modules() if isinstance(m, ElasticBatchNorm2d))
    before = stem.running_mean.clone()
    recalibrate_batchnorm(subnet, torch.rand(16, 3, IMAGE_SIZE, IMAGE_SIZE) + 0.5)
    assert torch.equal(stem.running_mean, before)
    assert not torch.equal(subnet.body[1].running_mean, before[: subnet.body[1].num_features])
