"""MobileNetV3 small/large with width multipliers, from torchvision."""

from __future__ import annotations

from torch import nn
from torchvision.models import mobilenet_v3_large, mobilenet_v3_small

from tango_ci.models._base import BaseFamily

# torchvision builds MobileNetV3's BatchNorm with momentum 0.01 (ImageNet: hundreds of
# thousands of steps). In a search's few proxy epochs the running statistics then barely move
# from their initial values, so evaluation sits at chance (0.11 after 4 epochs on a 10-class
# set, against 0.89 with 0.1) and every mobilenetv3 candidate is pruned or mis-ranked.
SHORT_RUN_BN_MOMENTUM = 0.1

# level -> (variant, width multiplier)
_CONFIGS = {
    "xs": ("small", 0.25),
    "s": ("small", 0.5),
    "m": ("small", 1.0),
    "l": ("large", 0.75),
    "xl": ("large", 1.0),
}


class MobileNetV3Family(BaseFamily):
    name = "mobilenetv3"

    def build(self, level: str, num_classes: int) -> nn.Module:
        variant, width = _CONFIGS[level]
        factory = mobilenet_v3_small if variant == "small" else mobilenet_v3_large
        model = factory(weights=None, num_classes=num_classes, width_mult=width)
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = SHORT_RUN_BN_MOMENTUM
        return model

    def describe(self, level: str) -> str:
        variant, width = _CONFIGS[level]
        return f"mobilenet_v3_{variant} x{width}"
