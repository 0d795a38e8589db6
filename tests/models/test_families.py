"""Every family builds at every level, grows with the level, and tops out at torchvision's."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import densenet121, resnet18, resnet50

from tango_ci.exceptions import UnknownNameError
from tango_ci.models import FAMILIES, LEVELS, build_model, count_parameters


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_levels_grow_and_run_on_small_images(family: str) -> None:
    counts = []
    for level in LEVELS:
        model = build_model(family, level, 5).eval()
        with torch.no_grad():
            assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 5)
        counts.append(count_parameters(model))
    assert counts == sorted(counts) and len(set(counts)) == len(counts)


def test_smallest_levels_have_a_few_thousand_parameters() -> None:
    assert count_parameters(build_model("resnet", "xs", 3)) < 10_000
    assert count_parameters(build_model("densenet", "xs", 3)) < 10_000


@pytest.mark.parametrize(
    "family, level, reference",
    [("resnet", "l", resnet18), ("resnet", "xl", resnet50), ("densenet", "xl", densenet121)],
)
def test_top_levels_are_torchvision_models(family, level, reference) -> None:
    assert count_parameters(build_model(family, level, 10)) == count_parameters(
        reference(weights=None, num_classes=10)
    )


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="valid names: resnet, densenet, mobilenetv3"):
        build_model("vgg", "s", 3)
    with pytest.raises(UnknownNameError, match="valid names: xs, s, m, l, xl"):
        build_model("resnet", "xxl", 3)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_batchnorm_statistics_settle_within_a_short_run(family: str) -> None:
    """A search trains each candidate for a few epochs: 30 steps must bring the running
    statistics of the first BatchNorm most of the way to the data's (torchvision's MobileNetV3
    momentum of 0.01 moves them 26% of the way, and evaluation then sits at chance)."""
    torch.manual_seed(0)
    model = build_model(family, "xs", 3).train()
    first = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []
    first.register_forward_hook(lambda module, inputs, _: seen.append(inputs[0].detach()))
    batch = torch.rand(8, 3, 32, 32) * 0.5 + 0.5  # images are never centred at 0
    with torch.no_grad():
        for _ in range(30):
            model(batch)
    target = seen[-1].mean(dim=(0, 2, 3))
    moved = (first.running_mean / target).clamp(max=1.5)
    assert float(moved.median()) > 0.9, float(moved.median())
