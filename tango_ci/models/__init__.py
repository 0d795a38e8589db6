"""Model families: an explicit registry of classification (and later detection) families, and
one of weight-sharing (elastic) classification families whose subnets a search picks from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tango_ci.contracts import TrainedModel
from tango_ci.exceptions import UnknownNameError
from tango_ci.models._base import LEVELS, BaseFamily
from tango_ci.models._densenet import DenseNetFamily
from tango_ci.models._elastic import (
    PHASES,
    ElasticFamily,
    ElasticNet,
    SubnetConfigError,
    SubnetSpace,
    recalibrate_batchnorm,
)
from tango_ci.models._mobilenetv3 import MobileNetV3Family
from tango_ci.models._ofa_mobilenetv3 import OFAMobileNetV3Family
from tango_ci.models._ofa_resnet import OFAResNetFamily
from tango_ci.models._resnet import ResNetFamily
from tango_ci.models._subnets import build_subnet, trained_subnet, trained_supernet

if TYPE_CHECKING:
    from torch import nn

FAMILIES: dict[str, BaseFamily] = {
    family.name: family for family in (ResNetFamily(), DenseNetFamily(), MobileNetV3Family())
}


def get_family(name: str) -> BaseFamily:
    if name not in FAMILIES:
        raise UnknownNameError(kind="model family", name=name, valid=", ".join(FAMILIES))
    return FAMILIES[name]


ELASTIC_FAMILIES: dict[str, ElasticFamily] = {
    family.name: family for family in (OFAResNetFamily(), OFAMobileNetV3Family())
}


def get_elastic_family(name: str) -> ElasticFamily:
    if name not in ELASTIC_FAMILIES:
        raise UnknownNameError(kind="elastic family", name=name, valid=", ".join(ELASTIC_FAMILIES))
    return ELASTIC_FAMILIES[name]


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
    "ELASTIC_FAMILIES",
    "FAMILIES",
    "LEVELS",
    "PHASES",
    "BaseFamily",
    "ElasticFamily",
    "ElasticNet",
    "SubnetConfigError",
    "SubnetSpace",
    "build_model",
    "build_subnet",
    "count_parameters",
    "get_elastic_family",
    "get_family",
    "recalibrate_batchnorm",
    "trained_model",
    "trained_subnet",
    "trained_supernet",
]
