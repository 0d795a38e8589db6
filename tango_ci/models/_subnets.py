"""Records and rebuilding of supernets and the subnets extracted from them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tango_ci.contracts import TrainedModel

if TYPE_CHECKING:
    from torch import nn


def trained_supernet(
    task: str,
    family: str,
    classes: list[str],
    image_size: int,
    resolutions: tuple[int, ...],
    parameters: int | None = None,
) -> TrainedModel:
    """The record of a trained supernet (the train stage of a supernet project)."""
    from tango_ci.models import get_elastic_family

    space = get_elastic_family(family).space(image_size, resolutions)
    return TrainedModel(
        task=task,
        family=family,
        name=f"{family}-supernet",
        architecture=f"supernet from {space.describe(space.smallest())} "
        f"to {space.describe(space.largest())}",
        image_size=image_size,
        classes=tuple(classes),
        shape={"supernet": True, "resolutions": list(resolutions)},
        parameters=parameters,
    )


def trained_subnet(
    task: str,
    family: str,
    config: dict,
    architecture: str,
    classes: list[str],
    image_size: int,
    resolutions: tuple[int, ...],
    parameters: int | None = None,
) -> TrainedModel:
    """The record of a subnet extracted from a supernet of ``family``."""
    from tango_ci.models import get_elastic_family

    key = get_elastic_family(family).space(image_size, resolutions).key(config)
    return TrainedModel(
        task=task,
        family=family,
        name=f"{family}-{key}",
        architecture=architecture,
        image_size=image_size,
        classes=tuple(classes),
        shape={"subnet": config, "resolutions": list(resolutions)},
        parameters=parameters,
    )


def build_subnet(info: TrainedModel) -> nn.Module:
    """A freshly built static network of the subnet that ``info`` records (weights to load);
    its configuration is read as data and validated against the family's space."""
    from tango_ci.exceptions import TangoError
    from tango_ci.models import get_elastic_family

    family = get_elastic_family(info.family)
    resolutions = info.shape.get("resolutions")
    if not isinstance(resolutions, list) or not all(
        isinstance(r, int) and not isinstance(r, bool) and 8 <= r <= 4096 for r in resolutions
    ):
        raise TangoError(f"model record of {info.name}: 'resolutions' must be a list of sizes")
    supernet = family.supernet(len(info.classes), info.image_size, tuple(resolutions))
    config = supernet.space.validate(info.shape.get("subnet"))
    return supernet.extract(config)
