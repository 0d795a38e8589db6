"""Weight-sharing ("once-for-all") networks: the space of subnets, the elastic layers that share
one set of weights between them, and the base classes every elastic family builds on.

A supernet holds the largest network's weights. ``set_active(config)`` picks a subnet: the
first blocks of every stage, the first channels of every weight and BatchNorm, the centre of
each depthwise kernel, and a lower input resolution. ``extract(config)`` copies that subnet into
plain torch layers, which export to ONNX like any other network.
"""

from __future__ import annotations

import abc
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tango_ci.exceptions import TangoError, UnknownNameError

# Progressive shrinking: train the largest net, then every depth and width (expand ratio) at
# full kernel and resolution, then everything.
PHASES = ("largest", "depth_width", "all")

# Configuration keys whose entries are one choice per active block (key, trial-name letter).
_PER_BLOCK = (("expand", "e"), ("kernel", "k"))


class SubnetConfigError(TangoError):
    _template = "invalid {family} subnet config at '{field}': {problem}"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class SubnetSpace:
    """The subnets of one supernet, as a list of choices per dimension.

    A config is a JSON-able dict: ``resolution``, ``depth`` (blocks per stage) and, where the
    family has them, ``width`` (one multiplier for every layer), ``expand`` and ``kernel`` (per
    stage, one entry per *active* block, so that equal subnets have equal configs).
    """

    family: str
    resolutions: tuple[int, ...]
    depths: tuple[tuple[int, ...], ...]
    widths: tuple[float, ...] = ()
    expands: tuple[int, ...] = ()
    kernels: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.resolutions or not all(_is_int(r) and r > 0 for r in self.resolutions):
            raise TangoError(f"{self.family} resolutions must be positive integers")
        object.__setattr__(self, "resolutions", tuple(sorted(set(self.resolutions))))
        digits = [c for choices in self.depths for c in choices] + [*self.expands, *self.kernels]
        if not all(0 < c < 10 for c in digits):
            raise ValueError("depth, expand and kernel choices must be single digits (see key())")

    @property
    def dimensions(self) -> dict[str, list]:
        """The choices of every dimension, e.g. ``{"resolution": [24, 32], "depth": [[1, 2, 3]] * 4}``."""
        optional = {"width": self.widths, "expand": self.expands, "kernel": self.kernels}
        return {
            "resolution": list(self.resolutions),
            "depth": [list(choices) for choices in self.depths],
            **{key: list(choices) for key, choices in optional.items() if choices},
        }

    def _choose(self, pick: Callable[[str, str, Sequence[Any]], Any]) -> dict:
        """Build a config, asking ``pick(dimension, trial name, choices)`` for every value."""
        config: dict[str, Any] = {"resolution": pick("resolution", "resolution", self.resolutions)}
        config["depth"] = [pick("depth", f"d{i}", c) for i, c in enumerate(self.depths)]
        if self.widths:
            config["width"] = pick("width", "width", self.widths)
        for key, letter in _PER_BLOCK:
            choices = self._block_choices(key)
            if choices:
                config[key] = [
                    [pick(key, f"{letter}{i}_{j}", choices) for j in range(depth)]
                    for i, depth in enumerate(config["depth"])
                ]
        return config

    def _block_choices(self, key: str) -> tuple[int, ...]:
        return self.expands if key == "expand" else self.kernels

    def largest(self) -> dict:
        return self._choose(lambda _dim, _name, choices: max(choices))

    def smallest(self) -> dict:
        return self._choose(lambda _dim, _name, choices: min(choices))

    def sample(self, rng: random.Random, phase: str = "all") -> dict:
        """A random subnet; ``phase`` restricts it as progressive shrinking does (see PHASES)."""
        if phase not in PHASES:
            raise UnknownNameError(kind="sampling phase", name=phase, valid=", ".join(PHASES))
        if phase == PHASES[0]:
            return self.largest()
        held = {"resolution", "kernel"} if phase == PHASES[1] else set()
        return self._choose(
            lambda dim, _name, choices: max(choices) if dim in held else rng.choice(list(choices))
        )

    def suggest(self, trial: Any) -> dict:
        """Ask an Optuna trial for a subnet (``resolution``, ``d0``.., ``width``, ``e0_1``..)."""
        return self.validate(
            self._choose(lambda _dim, name, choices: trial.suggest_categorical(name, list(choices)))
        )

    def _fail(self, field: str, problem: str) -> NoReturn:
        raise SubnetConfigError(family=self.family, field=field, problem=problem)

    def _choice(
        self, field: str, value: object, choices: Sequence[Any], number: bool = False
    ) -> Any:
        if isinstance(value, bool) or not (_is_int(value) or (number and isinstance(value, float))):
            wanted = "a number" if number else "an integer"
            self._fail(field, f"expected {wanted}, got {value!r}")
        if value not in choices:
            self._fail(field, f"{value!r} is not one of {', '.join(map(str, choices))}")
        return choices[list(choices).index(value)]

    def _list(self, field: str, value: object, length: int) -> list:
        if not isinstance(value, list | tuple):
            self._fail(field, f"expected a list, got {value!r}")
        if len(value) != length:
            self._fail(field, f"expected {length} entries, got {len(value)}")
        return list(value)

    def validate(self, config: object) -> dict:
        """A normalised copy of ``config``; a :class:`SubnetConfigError` naming the field if it
        is not a subnet of this space (configs come from files)."""
        if not isinstance(config, dict):
            self._fail("config", f"expected a mapping, got {type(config).__name__}")
        expected = list(self.dimensions)
        for key in [*config, *expected]:
            if key not in expected:
                self._fail(str(key), f"unknown field; expected {', '.join(expected)}")
            if key not in config:
                self._fail(key, "missing")
        out: dict[str, Any] = {
            "resolution": self._choice("resolution", config["resolution"], self.resolutions)
        }
        depth = self._list("depth", config["depth"], len(self.depths))
        out["depth"] = [
            self._choice(f"depth[{i}]", value, choices)
            for i, (value, choices) in enumerate(zip(depth, self.depths, strict=True))
        ]
        if self.widths:
            out["width"] = self._choice("width", config["width"], self.widths, number=True)
        for key, _ in _PER_BLOCK:
            choices = self._block_choices(key)
            if not choices:
                continue
            stages = self._list(key, config[key], len(self.depths))
            out[key] = [
                [
                    self._choice(f"{key}[{i}][{j}]", value, choices)
                    for j, value in enumerate(self._list(f"{key}[{i}]", stage, count))
                ]
                for i, (stage, count) in enumerate(zip(stages, out["depth"], strict=True))
            ]
        return out

    def _words(self, config: dict, depth_separator: str, stage_separator: str) -> list[str]:
        config = self.validate(config)
        words = [f"r{config['resolution']}", "d" + depth_separator.join(map(str, config["depth"]))]
        words += [f"w{config['width']:g}"] if self.widths else []
        for key, letter in _PER_BLOCK:
            if key in config:
                words.append(
                    letter + stage_separator.join("".join(map(str, s)) for s in config[key])
                )
        return words

    def key(self, config: dict) -> str:
        """A short canonical string, e.g. ``r32-d2231-w0.75`` or ``r32-d23-e34.346-k37.355``."""
        return "-".join(self._words(config, "", "."))

    def describe(self, config: dict) -> str:
        """Human text for reports, e.g. ``ofa-resnet r32 d2-2-3-1 w0.75``."""
        return " ".join([self.family, *self._words(config, "-", "-")])

    def feature_names(self) -> list[str]:
        names = ["resolution"] + [f"d{i}" for i in range(len(self.depths))]
        names += ["width"] if self.widths else []
        for key, letter in _PER_BLOCK:
            if self._block_choices(key):
                names += [
                    f"{letter}{i}_{j}" for i, c in enumerate(self.depths) for j in range(max(c))
                ]
        return names

    def to_features(self, config: dict) -> list[float]:
        """A fixed-length vector (see ``feature_names``); inactive blocks count as 0."""
        config = self.validate(config)
        features = [float(config["resolution"])] + [float(d) for d in config["depth"]]
        features += [float(config["width"])] if self.widths else []
        for key, _ in _PER_BLOCK:
            if key in config:
                for stage, choices in zip(config[key], self.depths, strict=True):
                    features += [float(v) for v in stage] + [0.0] * (max(choices) - len(stage))
        return features


class Elastic:
    """Marks a module that only makes sense inside a supernet (never in an extracted one)."""


class ElasticConv2d(Elastic, nn.Module):
    """A convolution whose active part is its first channels and the centre of its kernel: the
    input decides the input channels, ``active_out`` and ``active_kernel`` the rest."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        *,
        depthwise: bool = False,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.depthwise = kernel_size, stride, depthwise
        shape = (out_channels, 1 if depthwise else in_channels, kernel_size, kernel_size)
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.active_out = out_channels
        self.active_kernel = kernel_size

    def _sliced(self, inputs: int, outputs: int, kernel: int) -> tuple[Tensor, Tensor | None]:
        start = (self.kernel_size - kernel) // 2
        crop = slice(start, start + kernel)
        weight = self.weight[:outputs, : 1 if self.depthwise else inputs, crop, crop]
        return weight, None if self.bias is None else self.bias[:outputs]

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        out_channels = channels if self.depthwise else self.active_out
        weight, bias = self._sliced(channels, out_channels, self.active_kernel)
        groups = channels if self.depthwise else 1
        return F.conv2d(x, weight, bias, self.stride, self.active_kernel // 2, 1, groups)

    def to_static(self, in_channels: int, out_channels: int, kernel: int) -> nn.Conv2d:
        weight, bias = self._sliced(in_channels, out_channels, kernel)
        groups = in_channels if self.depthwise else 1
        conv = nn.Conv2d(
            in_channels, out_channels, kernel, self.stride, kernel // 2, 1, groups, bias is not None
        )
        with torch.no_grad():
            conv.weight.copy_(weight)
            if bias is not None and conv.bias is not None:
                conv.bias.copy_(bias)
        return conv


class ElasticBatchNorm2d(Elastic, nn.BatchNorm2d):
    """BatchNorm over the first channels: batch statistics of those channels when training,
    and only their slice of the running statistics is updated (as Once-for-All does)."""

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        if channels == self.num_features:
            return super().forward(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative average, as nn.BatchNorm2d
                factor = 1.0 / float(self.num_batches_tracked)
        mean, var = cast(Tensor, self.running_mean), cast(Tensor, self.running_var)
        return F.batch_norm(
            x, mean[:channels], var[:channels], self.weight[:channels], self.bias[:channels],
            self.training, factor, self.eps,
        )  # fmt: skip

    def to_static(self, channels: int) -> nn.BatchNorm2d:
        norm = nn.BatchNorm2d(channels, eps=self.eps, momentum=self.momentum)
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(norm, name).copy_(getattr(self, name)[:channels])
            cast(Tensor, norm.num_batches_tracked).copy_(cast(Tensor, self.num_batches_tracked))
        return norm


def resize(x: Tensor, image_size: int, resolution: int) -> Tensor:
    """Images arrive at ``image_size``; a subnet of another resolution sees them resized."""
    if resolution == image_size:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)


def init_weights(model: nn.Module) -> None:
    """Deterministic from torch's RNG: He-normal convolutions, unit BatchNorm, linear layers
    as torch draws them. (An N(0, 0.01) head kept an ofa-resnet subnet at chance for 7 of 15
    epochs on glyphs: 0.52/0.66 validation accuracy, against 0.945/0.86/0.91 with torch's.)"""
    for module in model.modules():
        if isinstance(module, nn.Conv2d | ElasticConv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            module.reset_parameters()


class StaticSubnet(nn.Module):
    """An extracted subnet: plain torch layers behind the same resize as the supernet."""

    def __init__(self, body: nn.Module, image_size: int, resolution: int) -> None:
        super().__init__()
        self.body, self.image_size, self.resolution = body, image_size, resolution

    def forward(self, x: Tensor) -> Tensor:
        return self.body(resize(x, self.image_size, self.resolution))


class ElasticNet(Elastic, nn.Module, abc.ABC):
    """A supernet: ``set_active`` picks the subnet that ``forward`` runs."""

    def __init__(self, space: SubnetSpace, image_size: int) -> None:
        super().__init__()
        self.space = space
        self.image_size = image_size
        self.active: dict = space.largest()

    def set_active(self, config: dict) -> None:
        self.active = self.space.validate(config)
        self.activate(self.active)

    @abc.abstractmethod
    def activate(self, config: dict) -> None:
        """Give the elastic layers the sizes of ``config`` (already validated)."""

    @abc.abstractmethod
    def forward_active(self, x: Tensor) -> Tensor:
        """The active subnet on images already at its resolution."""

    @abc.abstractmethod
    def extract_body(self, config: dict) -> nn.Module:
        """Plain torch layers holding copies of the weights ``config`` uses."""

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_active(resize(x, self.image_size, self.active["resolution"]))

    def extract(self, config: dict) -> nn.Module:
        """A static copy of the subnet, equal to ``set_active(config)`` in eval mode."""
        config = self.space.validate(config)
        device = next(self.parameters()).device
        # new layers draw initial weights that are overwritten; the caller's RNG stays as it was
        with torch.random.fork_rng(devices=[]):
            body = self.extract_body(config)
        subnet = StaticSubnet(body, self.image_size, config["resolution"])
        return subnet.to(device).train(self.training)


class ElasticFamily(abc.ABC):
    """A family of weight-sharing networks (the elastic counterpart of ``BaseFamily``)."""

    name: str

    @abc.abstractmethod
    def space(self, image_size: int, resolutions: tuple[int, ...]) -> SubnetSpace:
        """The subnets of a supernet for ``image_size`` inputs, without building weights."""

    @abc.abstractmethod
    def supernet(
        self, num_classes: int, image_size: int, resolutions: tuple[int, ...]
    ) -> ElasticNet:
        """A freshly initialised supernet (never downloaded weights)."""


def recalibrate_batchnorm(model: nn.Module, images: Tensor, batch: int = 64) -> None:
    """Set every BatchNorm's running statistics to those of ``images`` (averaged over batches
    of ``batch``) and leave ``model`` in eval mode. Shared weights fit no subnet exactly, so an
    extracted subnet's statistics are measured again."""
    if len(images) == 0 or batch < 1:
        raise TangoError("recalibrating BatchNorm needs images and a batch size of 1 or more")
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    device = next((p.device for p in model.parameters()), images.device)
    model.train()
    try:
        with torch.no_grad():
            for chunk in images.split(batch):
                model(chunk.to(device))
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        model.eval()
