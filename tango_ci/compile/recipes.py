"""Build recipes as data: every choice an onnxruntime build makes, recorded so a rebuild is exact.

A :class:`Recipe` says how a network is quantised (format, activation and weight types,
per-channel scales, calibration method and image count, which nodes stay in float) and how the
session runs it (graph optimisation level, thread spinning). ``engine: auto`` searches recipes
on the device (:mod:`tango_ci.bench.optimise`); the chosen one goes into ``artifact.json`` and
the registry record, and :func:`Recipe.from_json` reads it back (refusing anything malformed:
an artifact is untrusted input).
"""

from __future__ import annotations

import platform
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

FORMATS = ("qdq", "qoperator")
TYPES = ("uint8", "int8")
CALIBRATIONS = ("minmax", "percentile", "entropy")
OPTIMISATIONS = ("basic", "extended", "all")
#: a recipe naming more float nodes than this is not one we wrote
MAX_FLOAT_NODES = 4096
_NODE_NAME = re.compile(r"^[\x20-\x7e]{1,512}$")  # printable ASCII, as exporters name nodes


class RecipeError(ValueError):
    """A recorded recipe that is not one this version can rebuild."""


@dataclass(frozen=True)
class SessionRecipe:
    """How onnxruntime runs the artifact (threads stay the runner's: its budget, not ours)."""

    graph_optimization: str = "all"
    spinning: bool = True


@dataclass(frozen=True)
class Recipe:
    """One way to build an int8 onnxruntime artifact (fp32 builds use only ``session``)."""

    format: str = "qdq"
    activations: str = "uint8"
    weights: str = "int8"
    per_channel: bool = True
    reduce_range: bool = False
    calibration: str = "minmax"
    calibration_images: int = 128
    #: nodes of the pre-processed graph left in float, in the order they were added
    float_nodes: tuple[str, ...] = ()
    session: SessionRecipe = field(default_factory=SessionRecipe)

    @property
    def label(self) -> str:
        """A short human name: ``qdq u8s8 per-channel minmax/128 +3 float``."""
        parts = [
            self.format,
            _types_label(self),
            "per-channel" if self.per_channel else "per-tensor",
            f"{self.calibration}/{self.calibration_images}",
        ]
        if self.reduce_range:
            parts.append("reduce-range")
        if self.float_nodes:
            parts.append(f"+{len(self.float_nodes)} float")
        return " ".join(parts)

    def with_float(self, node: str) -> Recipe:
        return replace(self, float_nodes=(*self.float_nodes, node))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["float_nodes"] = list(self.float_nodes)
        return data

    @classmethod
    def from_json(cls, data: Any, where: str = "recipe") -> Recipe:
        """Read a recorded recipe, refusing unknown fields, values and oversized lists."""
        if not isinstance(data, dict):
            raise RecipeError(f"{where}: expected an object, got {type(data).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RecipeError(f"{where}: unknown field '{unknown[0]}'")
        _choice(data, "format", FORMATS, where)
        _choice(data, "activations", TYPES, where)
        _choice(data, "weights", TYPES, where)
        _choice(data, "calibration", CALIBRATIONS, where)
        for flag in ("per_channel", "reduce_range"):
            if flag in data and not isinstance(data[flag], bool):
                raise RecipeError(f"{where}.{flag}: expected true or false")
        count = data.get("calibration_images", 128)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100_000:
            raise RecipeError(f"{where}.calibration_images: expected an integer 1-100000")
        nodes = data.get("float_nodes", [])
        if not isinstance(nodes, list) or len(nodes) > MAX_FLOAT_NODES:
            raise RecipeError(f"{where}.float_nodes: expected a list of at most {MAX_FLOAT_NODES}")
        for i, node in enumerate(nodes):
            if not isinstance(node, str) or not _NODE_NAME.match(node):
                raise RecipeError(f"{where}.float_nodes[{i}]: not a node name")
        session = data.get("session", {})
        if not isinstance(session, dict) or set(session) - {"graph_optimization", "spinning"}:
            raise RecipeError(f"{where}.session: expected graph_optimization and spinning")
        _choice(session, "graph_optimization", OPTIMISATIONS, f"{where}.session")
        if "spinning" in session and not isinstance(session["spinning"], bool):
            raise RecipeError(f"{where}.session.spinning: expected true or false")
        return cls(
            **{k: v for k, v in data.items() if k not in ("float_nodes", "session")},
            float_nodes=tuple(nodes),
            session=SessionRecipe(**session),
        )


def _types_label(recipe: Recipe) -> str:
    short = {"uint8": "U8", "int8": "S8"}
    return f"{short[recipe.activations]}{short[recipe.weights]}"


def _choice(data: dict, key: str, allowed: tuple[str, ...], where: str) -> None:
    if key in data and data[key] not in allowed:
        raise RecipeError(f"{where}.{key}: '{data[key]}' is not one of {', '.join(allowed)}")


# ----------------------------------------------------------------------------- the CPU
def cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """What decides the integer kernels: the architecture and the dot-product extensions."""
    arch = platform.machine().lower()
    flags: set[str] = set()
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key = line.split(":", 1)[0].strip().lower()
            if key in ("flags", "features"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    x86 = arch in ("x86_64", "amd64", "i686", "x86")
    return {
        "arch": arch,
        "x86": x86,
        "vnni": bool(flags & {"avx512_vnni", "avx_vnni", "avx_vnni_int8"}),
        "amx": "amx_int8" in flags,
        "arm_dot": bool(flags & {"asimddp", "i8mm"}),
        "flags": sorted(flags & _KNOWN_FLAGS),
    }


_KNOWN_FLAGS = {
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx_vnni_int8",
    "amx_int8",
    "amx_bf16",
    "asimddp",
    "i8mm",
}


def base_recipes(features: dict[str, Any]) -> list[Recipe]:
    """The quantisation recipes worth timing on a CPU with ``features``, most promising first.

    x86: uint8 activations have native VNNI/AMX kernels, with int8 (U8S8) or uint8 (U8U8)
    weights; S8S8 is emulated (about 3x slower on a VNNI Xeon), so it comes last. Without
    VNNI, 7-bit weights (``reduce_range``) avoid the saturation of the 16-bit accumulator.
    Arm: S8S8 has the dot-product kernels, U8S8 is kept as the alternative. Which is fastest
    is then measured, not assumed.
    """
    reduce = bool(features.get("x86")) and not features.get("vnni") and not features.get("amx")
    if features.get("x86", True):
        types = [("uint8", "int8"), ("uint8", "uint8"), ("int8", "int8")]
    else:
        types = [("int8", "int8"), ("uint8", "int8")]
    recipes = []
    for activations, weights in types:
        for per_channel in (True, False):
            for form in FORMATS:
                recipes.append(
                    Recipe(
                        format=form,
                        activations=activations,
                        weights=weights,
                        per_channel=per_channel,
                        reduce_range=reduce,
                    )
                )
    return recipes


__all__ = [
    "CALIBRATIONS",
    "FORMATS",
    "Recipe",
    "RecipeError",
    "SessionRecipe",
    "base_recipes",
    "cpu_features",
]
