"""MobileNetV3 small/large with width multipliers, from torchvision."""

from __future__ import annotations

from torch import nn
from torchvision.models import mobilenet_v3_large, mobilenet_v3_small

from tango_ci.models._base import BaseFamily

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
        return factory(weights=None, num_classes=num_classes, width_mult=width)

    def describe(self, level: str) -> str:
        variant, width = _CONFIGS[level]
        return f"mobilenet_v3_{variant} x{width}"
