"""``ofa-mobilenetv3``: MobileNetV3 inverted-residual blocks with elastic depth, expand ratio
and depthwise kernel, as in Once-for-All, for small images.

A 16-channel stride-1 stem, four stages (16, 24, 40, 64 channels; stride 2 at the start of
stages 2-4) of up to four blocks, then a 1x1 convolution to 384 channels, pooling and a linear
layer. A subnet keeps the first 2-4 blocks of each stage; each block has its own expand ratio
(the first channels of the expansion) and kernel (the centre of the 7x7 depthwise weight).
"""

from __future__ import annotations

import copy
from typing import cast

from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.ops import SqueezeExcitation

from tango_ci.models._elastic import (
    Elastic,
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticFamily,
    ElasticNet,
    SubnetSpace,
    init_weights,
)
from tango_ci.models._mobilenetv3 import SHORT_RUN_BN_MOMENTUM

STEM_WIDTH = 16
# (output channels, activation, squeeze-excite) per stage, MobileNetV3-Large's pattern shrunk:
# ReLU early, hard-swish late, squeeze-excite from the 40-channel stage on.
STAGES: tuple[tuple[int, type[nn.Module], bool], ...] = (
    (16, nn.ReLU, False),
    (24, nn.ReLU, False),
    (40, nn.ReLU, True),
    (64, nn.Hardswish, True),
)
HEAD_WIDTH = 384
DEPTHS = (2, 3, 4)
EXPANDS = (3, 4, 6)
KERNELS = (3, 5, 7)


def _make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNet's rounding: to a multiple of ``divisor``, never more than 10% down."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def squeeze_channels(channels: int) -> int:
    return _make_divisible(channels // 4)


def _norm(channels: int) -> ElasticBatchNorm2d:
    return ElasticBatchNorm2d(channels, momentum=SHORT_RUN_BN_MOMENTUM)


class ElasticSqueezeExcite(Elastic, nn.Module):
    """torchvision's SqueezeExcitation (ReLU, hard-sigmoid) over the first channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = ElasticConv2d(channels, squeeze_channels(channels), 1, bias=True)
        self.fc2 = ElasticConv2d(squeeze_channels(channels), channels, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        self.fc1.active_out = squeeze_channels(channels)
        self.fc2.active_out = channels
        scale = self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1))))
        return F.hardsigmoid(scale) * x

    def to_static(self, channels: int) -> SqueezeExcitation:
        squeeze = squeeze_channels(channels)
        block = SqueezeExcitation(channels, squeeze, nn.ReLU, nn.Hardsigmoid)
        block.fc1 = self.fc1.to_static(channels, squeeze, 1)
        block.fc2 = self.fc2.to_static(squeeze, channels, 1)
        return block


class InvertedResidual(nn.Module):
    """A static block: expand 1x1, depthwise kxk, squeeze-excite, project 1x1 (+ input)."""

    def __init__(
        self,
        expand: nn.Module,
        depthwise: nn.Module,
        squeeze_excite: nn.Module,
        project: nn.Module,
        residual: bool,
    ) -> None:
        super().__init__()
        self.expand, self.depthwise, self.squeeze_excite = expand, depthwise, squeeze_excite
        self.project, self.residual = project, residual

    def forward(self, x: Tensor) -> Tensor:
        out = self.project(self.squeeze_excite(self.depthwise(self.expand(x))))
        return x + out if self.residual else out


class ElasticInvertedResidual(Elastic, nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        activation: type[nn.Module],
        squeeze_excite: bool,
    ) -> None:
        super().__init__()
        hidden = in_channels * max(EXPANDS)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.activation = activation
        self.expand_conv = ElasticConv2d(in_channels, hidden, 1)
        self.expand_bn = _norm(hidden)
        self.depthwise_conv = ElasticConv2d(hidden, hidden, max(KERNELS), stride, depthwise=True)
        self.depthwise_bn = _norm(hidden)
        self.squeeze_excite = ElasticSqueezeExcite(hidden) if squeeze_excite else None
        self.project_conv = ElasticConv2d(hidden, out_channels, 1)
        self.project_bn = nn.BatchNorm2d(out_channels, momentum=SHORT_RUN_BN_MOMENTUM)
        self.act = activation()
        self.residual = stride == 1 and in_channels == out_channels

    def configure(self, expand: int, kernel: int) -> None:
        self.expand_conv.active_out = self.in_channels * expand
        self.depthwise_conv.active_kernel = kernel

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.expand_bn(self.expand_conv(x)))
        out = self.act(self.depthwise_bn(self.depthwise_conv(out)))
        if self.squeeze_excite is not None:
            out = self.squeeze_excite(out)
        out = self.project_bn(self.project_conv(out))
        return x + out if self.residual else out

    def extract(self, expand: int, kernel: int) -> InvertedResidual:
        hidden = self.in_channels * expand
        return InvertedResidual(
            nn.Sequential(
                self.expand_conv.to_static(self.in_channels, hidden, 1),
                self.expand_bn.to_static(hidden),
                self.activation(),
            ),
            nn.Sequential(
                self.depthwise_conv.to_static(hidden, hidden, kernel),
                self.depthwise_bn.to_static(hidden),
                self.activation(),
            ),
            nn.Identity() if self.squeeze_excite is None else self.squeeze_excite.to_static(hidden),
            nn.Sequential(
                self.project_conv.to_static(hidden, self.out_channels, 1),
                copy.deepcopy(self.project_bn),
            ),
            self.residual,
        )


class OFAMobileNetV3(ElasticNet):
    def __init__(self, num_classes: int, space: SubnetSpace, image_size: int) -> None:
        super().__init__(space, image_size)
        self.stem = nn.Sequential(
            nn.Conv2d(3, STEM_WIDTH, 3, 1, 1, bias=False),
            nn.BatchNorm2d(STEM_WIDTH, momentum=SHORT_RUN_BN_MOMENTUM),
            nn.Hardswish(),
        )
        stages = []
        in_channels = STEM_WIDTH
        for index, ((out_channels, activation, se), choices) in enumerate(
            zip(STAGES, space.depths, strict=True)
        ):
            blocks = [
                ElasticInvertedResidual(
                    in_channels if j == 0 else out_channels,
                    out_channels,
                    2 if index > 0 and j == 0 else 1,
                    activation,
                    se,
                )
                for j in range(max(choices))
            ]
            stages.append(nn.ModuleList(blocks))
            in_channels = out_channels
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(
            nn.Conv2d(in_channels, HEAD_WIDTH, 1, bias=False),
            nn.BatchNorm2d(HEAD_WIDTH, momentum=SHORT_RUN_BN_MOMENTUM),
            nn.Hardswish(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Linear(HEAD_WIDTH, num_classes),
        )
        init_weights(self)

    def _blocks(self) -> list[list[ElasticInvertedResidual]]:
        stages = [cast(nn.ModuleList, stage) for stage in self.stages]
        return [[cast(ElasticInvertedResidual, block) for block in stage] for stage in stages]

    def activate(self, config: dict) -> None:
        for stage, expands, kernels in zip(
            self._blocks(), config["expand"], config["kernel"], strict=True
        ):
            for block, expand, kernel in zip(stage, expands, kernels, strict=False):
                block.configure(expand, kernel)

    def forward_active(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for stage, depth in zip(self._blocks(), self.active["depth"], strict=True):
            for block in stage[:depth]:
                x = block(x)
        return self.head(x)

    def extract_body(self, config: dict) -> nn.Module:
        layers: list[nn.Module] = [copy.deepcopy(self.stem)]
        for stage, expands, kernels in zip(
            self._blocks(), config["expand"], config["kernel"], strict=True
        ):
            layers += [
                block.extract(expand, kernel)
                for block, expand, kernel in zip(stage, expands, kernels, strict=False)
            ]
        layers.append(copy.deepcopy(self.head))
        return nn.Sequential(*layers)


class OFAMobileNetV3Family(ElasticFamily):
    name = "ofa-mobilenetv3"

    def space(self, image_size: int, resolutions: tuple[int, ...]) -> SubnetSpace:
        return SubnetSpace(
            family=self.name,
            resolutions=tuple(resolutions),
            depths=(DEPTHS,) * len(STAGES),
            expands=EXPANDS,
            kernels=KERNELS,
        )

    def supernet(
        self, num_classes: int, image_size: int, resolutions: tuple[int, ...]
    ) -> OFAMobileNetV3:
        return OFAMobileNetV3(num_classes, self.space(image_size, resolutions), image_size)
