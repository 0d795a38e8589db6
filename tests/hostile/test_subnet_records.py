"""A subnet's record is read from a run folder that may come from elsewhere: its configuration
is data, validated before any network is built."""

from __future__ import annotations

import pytest
import torch

from tango_ci.contracts import TrainedModel
from tango_ci.exceptions import TangoError
from tango_ci.models import build_subnet, get_elastic_family, trained_subnet


def _record(**shape) -> TrainedModel:
    space = get_elastic_family("ofa-resnet").space(16, (16, 12))
    base = trained_subnet(
        "classification", "ofa-resnet", space.smallest(), "x", ["a", "b"], 16, (16, 12)
    )
    return TrainedModel(**{**base.__dict__, "shape": {**base.shape, **shape}})


def test_a_recorded_subnet_rebuilds_to_the_same_architecture() -> None:
    family = get_elastic_family("ofa-resnet")
    supernet = family.supernet(2, 16, (16, 12))
    config = supernet.space.smallest()
    extracted = supernet.extract(config)
    rebuilt = build_subnet(_record())
    rebuilt.load_state_dict(extracted.state_dict())  # same tensors, same shapes
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(rebuilt.eval()(x), extracted.eval()(x))


@pytest.mark.parametrize(
    "shape",
    [
        {"subnet": {"resolution": 16, "depth": [9, 9, 9, 9], "width": 1.0}},
        {"subnet": {"resolution": True, "depth": [1, 1, 1, 1], "width": 1.0}},
        {"subnet": "r16-d1111-w1.0"},
        {"subnet": {"resolution": 16, "depth": [1, 1, 1, 1], "width": 1.0, "code": "x"}},
        {"resolutions": [16, True]},
        {"resolutions": "16"},
        {"resolutions": [10**9]},
    ],
)
def test_a_hostile_subnet_record_is_refused_in_one_line(shape: dict) -> None:
    with pytest.raises(TangoError) as refused:
        build_subnet(_record(**shape))
    assert "\n" not in str(refused.value)


def test_an_unknown_elastic_family_is_refused() -> None:
    record = _record()
    with pytest.raises(TangoError, match="elastic family"):
        build_subnet(TrainedModel(**{**record.__dict__, "family": "os-system"}))
