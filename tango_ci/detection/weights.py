"""ultralytics checkpoints, loaded without ever running code from them.

An ultralytics ``.pt`` file is a pickle of whole model objects, and ultralytics loads it with
``torch.load(weights_only=False)``: a file whose pickle calls ``os.system`` runs it. Here every
ultralytics load goes through :func:`restricted_load` instead: torch's restricted unpickler
with an allow-list of exactly the globals a checkpoint may name (the torch and ultralytics
layer classes, a few data classes), checked against the file before anything is unpickled.
Official checkpoints keep working as ``train.pretrained``; a global outside the list is
refused by name. ``install()`` swaps ultralytics' loader for ours once per process (and its
label caches, pickles beside the data, for a rescan that writes nothing);
``ULTRALYTICS_SAFE_LOAD`` (set by ``prepare_environment``) turns on ultralytics' own restricted
model building where it has it (no ``eval`` of a checkpoint's YAML).
"""

from __future__ import annotations

import importlib
import pickle
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tango_ci.detection.ultralytics_env import import_configured
from tango_ci.exceptions import TangoError
from tango_ci.rundir import display
from tango_ci.train.checkpoints import refusal_reason

# modules whose nn.Module classes a checkpoint may name
_LAYER_MODULES = ("torch.nn.modules.", "ultralytics.nn.modules.")
_LAYER_EXACT = ("torch.nn.modules", "ultralytics.nn.modules", "ultralytics.nn.tasks")
# plain data a checkpoint may hold besides tensors, by the name the pickle uses
_DATA = {
    "ultralytics.utils.IterableSimpleNamespace": ("ultralytics.utils", "IterableSimpleNamespace"),
    "types.SimpleNamespace": ("types", "SimpleNamespace"),
    "pathlib.PosixPath": ("pathlib", "PosixPath"),
    "pathlib.WindowsPath": ("pathlib", "PosixPath"),
    "numpy.dtype": ("numpy", "dtype"),
    "numpy.core.multiarray.scalar": None,  # resolved below: numpy's scalar reconstructor
    "numpy._core.multiarray.scalar": None,
}


class UnsafeWeights(TangoError):
    """A weights file names something a checkpoint may not hold, or is not a checkpoint."""


def _restricted_getattr(obj: Any, name: str) -> Any:
    """``getattr`` as official checkpoints use it (``Detect.forward``), and nothing more."""
    import torch

    if isinstance(obj, type) and issubclass(obj, torch.nn.Module) and not name.startswith("_"):
        return getattr(obj, name)
    if isinstance(obj, torch.nn.Module) and name in ("forward", "forward_fuse"):
        return getattr(type(obj), name).__get__(obj)
    raise pickle.UnpicklingError(f"getattr({type(obj).__name__}, {name!r}) is not allowed")


def _allowed(name: str) -> Any | None:
    """The object a checkpoint may name as ``name``, or None when it may not."""
    import numpy as np
    import torch

    if name == "builtins.getattr":
        return _restricted_getattr
    if name in _DATA:
        where = _DATA[name]
        if where is None:
            return np.float64(0).__reduce__()[0]
        return getattr(importlib.import_module(where[0]), where[1])
    module, _, attribute = name.rpartition(".")
    if not (module in _LAYER_EXACT or module.startswith(_LAYER_MODULES)):
        return None
    try:  # only modules of installed torch and ultralytics, never a path from the file
        found = getattr(import_configured(module), attribute, None)
    except ImportError:
        return None
    if isinstance(found, type) and issubclass(found, torch.nn.Module):
        return found
    return None


def _globals_in(path: Path) -> list[str]:
    import torch

    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except (ValueError, RuntimeError, OSError, pickle.UnpicklingError) as exc:
        raise UnsafeWeights(
            f"{display(path)}: not a PyTorch checkpoint (zip) file ({refusal_reason(exc)})"
        ) from None


def restricted_load(path: Path | str, map_location: Any = "cpu", **_: Any) -> Any:
    """Load a (ultralytics) checkpoint with only allow-listed globals; never runs its code."""
    import torch

    path = Path(path)
    names = _globals_in(path)
    entries: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = []
    for name in names:
        allowed = _allowed(name)
        if allowed is None:
            raise UnsafeWeights(
                f"{display(path)}: refers to '{name[:100]}', which a weights file "
                "may not hold; it was not loaded"
            )
        entries.append((allowed, name))
    try:
        with torch.serialization.safe_globals(entries):
            return torch.load(str(path), map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise UnsafeWeights(
            f"{display(path)}: not loadable as restricted weights ({refusal_reason(exc)})"
        ) from None


_installed = False


def install() -> None:
    """Route every ultralytics checkpoint load of this process through :func:`restricted_load`.

    Called by :func:`ultralytics_module` right after ultralytics is imported.
    """
    global _installed
    if _installed:
        return
    for module_name in (
        "ultralytics.utils.patches",
        "ultralytics.nn.tasks",
        "ultralytics.utils.torch_utils",
    ):
        module = importlib.import_module(module_name)
        if hasattr(module, "torch_load"):
            module.torch_load = restricted_load  # type: ignore[attr-defined]  # checked above
    for module_name in ("ultralytics.data.utils", "ultralytics.data.dataset"):
        module = importlib.import_module(module_name)
        if hasattr(module, "load_dataset_cache_file"):
            module.load_dataset_cache_file = _no_label_cache  # type: ignore[attr-defined]
            module.save_dataset_cache_file = _keep_no_label_cache  # type: ignore[attr-defined]
    _installed = True


def _no_label_cache(path: Path) -> dict:
    """ultralytics keeps the labels it scanned in ``labels/<split>.cache`` beside the data and
    loads that file with ``np.load(allow_pickle=True)``: a ``.cache`` pushed with a dataset
    would run code. It is never read; ultralytics scans the labels again (as when its cache
    is stale)."""
    raise FileNotFoundError(f"{path}: ultralytics' label caches are not read (pickles)")


def _keep_no_label_cache(prefix: str, path: Path, x: dict, version: str) -> None:
    """Nor written: the dataset (under DVC, in the repository) is not changed by training.
    The version goes into ``x`` as ultralytics' own function puts it (its caller reads it)."""
    x["version"] = version


def ultralytics_module(name: str = "ultralytics") -> Any:
    """An ultralytics module, imported offline, with every checkpoint it loads going through
    :func:`restricted_load`. The one way tango_ci imports ultralytics."""
    module = import_configured(name)
    install()
    return module


def check_pretrained(path: Path) -> types.SimpleNamespace:
    """Load a user's pretrained file once, restricted, before training starts; what it holds."""
    import torch

    checkpoint = restricted_load(path)
    model = checkpoint
    if isinstance(checkpoint, dict):  # an empty container module is falsy: test for None
        model = checkpoint.get("model")
        model = checkpoint.get("ema") if model is None else model

    if not isinstance(model, torch.nn.Module):
        raise UnsafeWeights(
            f"{display(path)}: holds no ultralytics model (expected the "
            "'model' entry of a checkpoint that ultralytics saved)"
        )
    return types.SimpleNamespace(model=model, tensors=len(model.state_dict()))
