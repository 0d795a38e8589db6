"""Compile backends: one module per engine, an explicit registry, capabilities as data."""

from tango_ci.compile._base import BaseCompiler, BuildRequest, Capabilities, Predictor
from tango_ci.compile._capabilities import CAPABILITIES

__all__ = ["CAPABILITIES", "BaseCompiler", "BuildRequest", "Capabilities", "Predictor"]
