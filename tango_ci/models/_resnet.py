"""ResNet from torchvision's classes, scaled down to a few thousand parameters at ``xs``."""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet18, resnet50
from torchvision.models.resnet import BasicBlock, ResNet

from tango_ci.models._base import BaseFamily

# level -> (stage widths, blocks per stage); l and xl are torchvision's resnet18 and resnet50.
_SMALL = {
    "xs": ((4, 8, 12, 16), (1, 1, 1, 1)),
    "s": ((8, 16, 32, 64), (1, 1, 1, 1)),
    "m": ((16, 32, 64, 128), (2, 2, 2, 2)),
}


class ScaledResNet(ResNet):
    """torchvision's ResNet with chosen stage widths and a 3x3 stride-1 stem for small images.

    Only ``__init__`` differs: blocks, ``_make_layer`` and ``forward`` are torchvision's.
    """

    def __init__(self, widths: tuple[int, ...], layers: tuple[int, ...], num_classes: int):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = widths[0], 1, 1, 64
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        self.layer1 = self._make_layer(BasicBlock, widths[0], layers[0])
        self.layer2 = self._make_layer(BasicBlock, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(BasicBlock, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(BasicBlock, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")


class ResNetFamily(BaseFamily):
    name = "resnet"

    def build(self, level: str, num_classes: int) -> nn.Module:
        if level == "l":
            return resnet18(weights=None, num_classes=num_classes)
        if level == "xl":
            return resnet50(weights=None, num_classes=num_classes)
        widths, layers = _SMALL[level]
        return ScaledResNet(widths, layers, num_classes)

    def describe(self, level: str) -> str:
        if level in ("l", "xl"):
            return {"l": "resnet18", "xl": "resnet50"}[level]
        widths, layers = _SMALL[level]
        return f"resnet widths {'-'.join(map(str, widths))}, blocks {'-'.join(map(str, layers))}"
