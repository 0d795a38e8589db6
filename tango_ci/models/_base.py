"""A model family: named complexity levels that build an ``nn.Module`` for a class count."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

LEVELS = ("xs", "s", "m", "l", "xl")


class BaseFamily(abc.ABC):
    name: str

    @abc.abstractmethod
    def build(self, level: str, num_classes: int) -> nn.Module:
        """A freshly initialised network of ``level`` (never downloaded weights)."""

    def describe(self, level: str) -> str:
        """A short human description of ``level`` for reports."""
        return f"{self.name}-{level}"
