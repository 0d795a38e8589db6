"""A tiny network exported to ONNX, whose work the latency tests count by hand."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from tango_ci.export import export_onnx

SIZE = 16


class Tiny(nn.Module):
    """conv 3x3 stride 2 -> ReLU -> depthwise 5x5 -> residual add -> global pool -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.depthwise = nn.Conv2d(8, 8, 5, padding=2, groups=8)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.stem(x))
        y = y + self.depthwise(y)
        return self.head(y.mean((2, 3)))


def expected_macs(size: int = SIZE, batch: int = 1) -> dict[str, float]:
    """Output elements x input channels per group x kernel height x width, by hand."""
    out = batch * 8 * (size // 2) ** 2  # 8 channels at half the size (stride 2)
    return {
        "conv-k3-s2": out * 3 * 3 * 3,
        "dwconv-k5-s1": out * 1 * 5 * 5,
        "linear": batch * 4 * 8,
    }


def export_tiny(path: Path) -> Path:
    """The network as the pipeline exports it: a fixed image size, a dynamic batch."""
    torch.manual_seed(0)
    export_onnx(Tiny(), path, (1, 3, SIZE, SIZE))
    return path


def export_tiny_open_size(path: Path) -> Path:
    """The network with the batch, height and width left open in the graph."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Tiny().eval(),
            (torch.zeros(1, 3, SIZE, SIZE),),
            str(path),
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}},
            opset_version=17,
            dynamo=False,
        )
    return path
