"""``ofa-resnet``: a BasicBlock ResNet for small images with elastic depth and width.

Four stages of up to three blocks (16-32-64-128 channels at full width), a 3x3 stride-1 stem
and stride 2 at the start of stages 2-4. A subnet keeps the first 1-3 blocks of each stage and
one width multiplier for every layer; extracted, it is torchvision's ``BasicBlock``s.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.models.resnet import BasicBlock

from tango_ci.models._elastic import (
    Elastic,
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticFamily,
    ElasticNet,
    SubnetSpace,
    init_weights,
)

BASE_WIDTHS = (16, 32, 64, 128)
DEPTHS = (1, 2, 3)
WIDTHS = (0.5, 0.75, 1.0)


def stage_widths(width: float) -> list[int]:
    return [max(1, round(base * width)) for base in BASE_WIDTHS]


class ElasticLinear(Elastic, nn.Linear):
    """A linear layer reading the first input features (what a narrower net gives it)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight[:, : x.shape[1]], self.bias)

    def to_static(self, in_features: int) -> nn.Linear:
        linear = nn.Linear(in_features, self.out_features)
        with torch.no_grad():
            linear.weight.copy_(self.weight[:, :in_features])
            linear.bias.copy_(self.bias)
        return linear


class ElasticBasicBlock(Elastic, nn.Module):
    """torchvision's BasicBlock with elastic output channels (its input comes from before)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = ElasticConv2d(in_channels, out_channels, 3, stride)
        self.bn1 = ElasticBatchNorm2d(out_channels)
        self.conv2 = ElasticConv2d(out_channels, out_channels, 3)
        self.bn2 = ElasticBatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        # Whether a shortcut is needed does not depend on the width: the multiplier is global.
        self.shortcut_conv: ElasticConv2d | None = None
        self.shortcut_bn: ElasticBatchNorm2d | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut_conv = ElasticConv2d(in_channels, out_channels, 1, stride)
            self.shortcut_bn = ElasticBatchNorm2d(out_channels)

    def set_width(self, channels: int) -> None:
        self.conv1.active_out = channels
        self.conv2.active_out = channels
        if self.shortcut_conv is not None:
            self.shortcut_conv.active_out = channels

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        if self.shortcut_conv is not None and self.shortcut_bn is not None:
            identity = self.shortcut_bn(self.shortcut_conv(x))
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)

    def extract(self, in_channels: int, out_channels: int) -> BasicBlock:
        downsample = None
        if self.shortcut_conv is not None and self.shortcut_bn is not None:
            downsample = nn.Sequential(
                self.shortcut_conv.to_static(in_channels, out_channels, 1),
                self.shortcut_bn.to_static(out_channels),
            )
        block = BasicBlock(in_channels, out_channels, self.stride, downsample)
        block.conv1 = self.conv1.to_static(in_channels, out_channels, 3)
        block.bn1 = self.bn1.to_static(out_channels)
        block.conv2 = self.conv2.to_static(out_channels, out_channels, 3)
        block.bn2 = self.bn2.to_static(out_channels)
        return block


class OFAResNet(ElasticNet):
    def __init__(self, num_classes: int, space: SubnetSpace, image_size: int) -> None:
        super().__init__(space, image_size)
        self.stem_conv = ElasticConv2d(3, BASE_WIDTHS[0], 3)
        self.stem_bn = ElasticBatchNorm2d(BASE_WIDTHS[0])
        self.relu = nn.ReLU(inplace=True)
        stages = []
        in_channels = BASE_WIDTHS[0]
        for index, (out_channels, choices) in enumerate(
            zip(BASE_WIDTHS, space.depths, strict=True)
        ):
            blocks = [
                ElasticBasicBlock(
                    in_channels if j == 0 else out_channels,
                    out_channels,
                    2 if index > 0 and j == 0 else 1,
                )
                for j in range(max(choices))
            ]
            stages.append(nn.ModuleList(blocks))
            in_channels = out_channels
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = ElasticLinear(BASE_WIDTHS[-1], num_classes)
        init_weights(self)

    def _blocks(self) -> list[list[ElasticBasicBlock]]:
        stages = [cast(nn.ModuleList, stage) for stage in self.stages]
        return [[cast(ElasticBasicBlock, block) for block in stage] for stage in stages]

    def activate(self, config: dict) -> None:
        widths = stage_widths(config["width"])
        self.stem_conv.active_out = widths[0]
        for stage, width in zip(self._blocks(), widths, strict=True):
            for block in stage:
                block.set_width(width)

    def forward_active(self, x: Tensor) -> Tensor:
        x = self.relu(self.stem_bn(self.stem_conv(x)))
        for stage, depth in zip(self._blocks(), self.active["depth"], strict=True):
            for block in stage[:depth]:
                x = block(x)
        return self.fc(torch.flatten(self.pool(x), 1))

    def extract_body(self, config: dict) -> nn.Module:
        widths = stage_widths(config["width"])
        layers: list[nn.Module] = [
            self.stem_conv.to_static(3, widths[0], 3),
            self.stem_bn.to_static(widths[0]),
            nn.ReLU(inplace=True),
        ]
        in_channels = widths[0]
        for stage, depth, out_channels in zip(self._blocks(), config["depth"], widths, strict=True):
            for block in stage[:depth]:
                layers.append(block.extract(in_channels, out_channels))
                in_channels = out_channels
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1), self.fc.to_static(in_channels)]
        return nn.Sequential(*layers)


class OFAResNetFamily(ElasticFamily):
    name = "ofa-resnet"

    def space(self, image_size: int, resolutions: tuple[int, ...]) -> SubnetSpace:
        return SubnetSpace(
            family=self.name,
            resolutions=tuple(resolutions),
            depths=(DEPTHS,) * len(BASE_WIDTHS),
            widths=WIDTHS,
        )

    def supernet(
        self, num_classes: int, image_size: int, resolutions: tuple[int, ...]
    ) -> OFAResNet:
        return OFAResNet(num_classes, self.space(image_size, resolutions), image_size)
