"""Model families: an explicit registry of classification (and later detection) families."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tango_ci.contracts import TrainedModel
from tango_ci.exceptions import UnknownNameError
from tango_ci.models._base import LEVELS, BaseFamily
from tango_ci.models._densenet import DenseNetFamily
from tango_ci.models._mobilenetv3 import MobileNetV3Family
from tango_ci.models._resnet import ResNetFamily

if TYPE_CHECKING:
    from torch import nn

FAMILIES: dict[str, BaseFamily] = {
    family.name: family for family in (ResNetFamily(), DenseNetFamily(), MobileNetV3Family())
}


def get_family(name: str) -> BaseFamily:
    if name not in FAMILIES:
        raise UnknownNameError(kind="model family", name=name, valid=", ".join(FAMILIES))
    return FAMILIES[name]


def build_model(family: str, level: str, num_classes: int) -> nn.Module:
    if level not in LEVELS:
        raise UnknownNameError(kind="level", name=level, valid=", ".join(LEVELS))
    return get_family(family).build(level, num_classes)


def trained_model(
    task: str,
    family: str,
    level: str,
    classes: list[str],
    image_size: int,
    parameters: int | None = None,
    trial: int | None = None,
) -> TrainedModel:
    """The record of a network of ``family`` at ``level`` (what ``model.json`` holds)."""
    return TrainedModel(
        task=task,
        family=family,
        name=f"{family}-{level}",
        architecture=get_family(family).describe(level),
        image_size=image_size,
        classes=tuple(classes),
        shape={"level": level},
        parameters=parameters,
        trial=trial,
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "FAMILIES",
    "LEVELS",
    "BaseFamily",
    "build_model",
    "count_parameters",
    "get_family",
    "trained_model",
]
