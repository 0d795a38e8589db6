"""Import ultralytics offline, with its settings inside the run folder and our thread count.

ultralytics reads ``YOLO_CONFIG_DIR`` and ``YOLO_OFFLINE`` when first imported, looks for a
font in its config folder (and would download one), and sets ``OMP_NUM_THREADS=1`` when it is
unset, which makes torch single-threaded. All three are handled here, once per process, and
``weights.ultralytics_module`` then replaces its checkpoint loader by a restricted one.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from pathlib import Path

_configured: Path | None = None


def prepare_environment(config_dir: Path | None = None) -> Path:
    """Point ultralytics at ``config_dir`` (default: a folder in the temp dir), offline."""
    global _configured
    if _configured is not None:
        return _configured  # ultralytics reads these once, at its first import
    folder = Path(config_dir or Path(tempfile.gettempdir()) / "tango-ultralytics")
    # ultralytics keeps its settings and fonts in YOLO_CONFIG_DIR/Ultralytics, and downloads
    # Arial.ttf (Arial.Unicode.ttf for non-Latin class names) there when missing
    settings_dir = folder / "Ultralytics"
    settings_dir.mkdir(parents=True, exist_ok=True)
    import matplotlib

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (settings_dir / name).exists():
            shutil.copy(dejavu, settings_dir / name)
    os.environ["YOLO_CONFIG_DIR"] = str(folder)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"  # no eval() of a checkpoint's model YAML
    os.environ.setdefault("YOLO_VERBOSE", "False")
    _configured = folder
    return folder


def import_configured(name: str = "ultralytics"):
    """Import an ultralytics module offline, without letting it change our thread count.

    Use :func:`tango_ci.detection.weights.ultralytics_module`, which also restricts the
    checkpoint loader; this is its first half.
    """
    prepare_environment()
    import torch

    threads, omp = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    module = importlib.import_module(name)
    trainer = importlib.import_module("ultralytics.engine.trainer")
    # its own check downloads yolo26n.pt; a module attribute patched at runtime
    trainer.check_amp = offline_amp_check  # type: ignore[attr-defined]
    if omp is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    torch.set_num_threads(threads)
    settings = importlib.import_module("ultralytics.utils").SETTINGS
    if settings.get("sync"):
        settings.update({"sync": False})  # no analytics events
    return module


def offline_amp_check(model) -> bool:
    """ultralytics' AMP check without its download: the model being trained, on a random
    batch, in fp32 and under autocast; AMP is used when both agree (and never on a CPU)."""
    import torch

    device = next(model.parameters()).device
    if device.type != "cuda":
        return False
    was_training = model.training
    model.eval()
    try:
        x = torch.rand(2, 3, 64, 64, device=device)
        with torch.no_grad():
            full = model(x)
            with torch.autocast("cuda"):
                mixed = model(x)
    finally:
        model.train(was_training)
    full = full[0] if isinstance(full, (list, tuple)) else full
    mixed = mixed[0] if isinstance(mixed, (list, tuple)) else mixed
    scale = float(full.abs().max()) or 1.0
    return (
        bool(torch.isfinite(mixed).all())
        and float((full - mixed.float()).abs().max()) <= 0.05 * scale
    )
