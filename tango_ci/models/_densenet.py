"""DenseNet from torchvision's class; ``xl`` is densenet121."""

from __future__ import annotations

from torch import nn
from torchvision.models import DenseNet

from tango_ci.models._base import BaseFamily

# level -> (growth rate, block config, initial features)
_CONFIGS = {
    "xs": (4, (2, 2, 2), 8),
    "s": (8, (3, 3, 3), 16),
    "m": (12, (4, 6, 8), 24),
    "l": (24, (6, 12, 16), 48),
    "xl": (32, (6, 12, 24, 16), 64),  # densenet121
}


class DenseNetFamily(BaseFamily):
    name = "densenet"

    def build(self, level: str, num_classes: int) -> nn.Module:
        growth, blocks, features = _CONFIGS[level]
        model = DenseNet(
            growth_rate=growth,
            block_config=blocks,
            num_init_features=features,
            num_classes=num_classes,
        )
        if level in ("xs", "s", "m"):
            # small images: a 3x3 stride-1 stem instead of 7x7/2 + max-pool
            model.features.conv0 = nn.Conv2d(
                3, features, kernel_size=3, stride=1, padding=1, bias=False
            )
            model.features.pool0 = nn.Identity()
        return model

    def describe(self, level: str) -> str:
        if level == "xl":
            return "densenet121"
        growth, blocks, _features = _CONFIGS[level]
        return f"densenet growth {growth}, blocks {'-'.join(map(str, blocks))}"
