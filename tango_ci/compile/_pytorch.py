"""PyTorch: the reference every report compares against. Modes: eager, TorchScript, and
``torch.compile`` (compiled when loaded, where the device's toolchain supports it); fp32 on
CPUs; fp32, fp16 and bf16 on CUDA GPUs (a runner whose accelerator is an NVIDIA GPU).

PyTorch cannot run an ONNX file, so this backend needs the trained network itself:
``BuildRequest.options["model_dir"]`` is a folder with ``model.json`` and ``best.pt`` (the network
the target deploys, ``RunDir.model_dir(target)``: the train stage's folder, or the subnet
specialised for the target).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np

from tango_ci.compile._base import ARTIFACT, BaseCompiler, BuildRequest, Predictor
from tango_ci.compile._capabilities import PYTORCH
from tango_ci.exceptions import TangoError
from tango_ci.rundir import display, file_sha256, read_json, write_json

MODES = ("eager", "torchscript", "compile")
#: where torch.compile's CPU code generator (Inductor) finds a C++ compiler
_COMPILERS = ("g++", "c++", "clang++")


def compile_refusal(device: str = "cpu") -> str | None:
    """Why ``torch.compile`` cannot build here, or None: on a CPU, Inductor writes C++ and
    needs a compiler (``CXX`` or one of g++, c++, clang++ on PATH)."""
    import os

    if device != "cpu":
        return None
    chosen = os.environ.get("CXX")
    if chosen and shutil.which(chosen.split()[0]):
        return None
    if not chosen and any(shutil.which(name) for name in _COMPILERS):
        return None
    named = f"CXX={chosen} is not on PATH" if chosen else "no g++, c++ or clang++ on PATH"
    return f"pytorch mode compile needs a C++ compiler for torch.compile on a CPU; {named}"


def _rebuild(folder: Path):
    """The trained network in ``folder``, rebuilt by the task that trained it."""
    from tango_ci.contracts import TrainedModel, upgrade_trained_model
    from tango_ci.plugins import get_task

    path = folder / TrainedModel.FILE
    info = TrainedModel.from_json(upgrade_trained_model(read_json(path)), display(path))
    return get_task(info.task).load_trained(folder), info


class PyTorchPredictor(Predictor):
    def __init__(
        self, module, threads: int | None, precision: str = "fp32", device: str = "cpu"
    ) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.device = device
        self.dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
        self.module = module.to(self.device, self.dtype)

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device, self.dtype)
            output = self.module(x)
            if isinstance(output, (tuple, list)):  # detection heads: (raw, features)
                output = output[0]
            if self.device == "cuda":
                torch.cuda.synchronize()  # latency covers the work, not only its launch
            return [output.float().cpu().numpy()]


class PyTorchCompiler(BaseCompiler):
    capabilities = PYTORCH

    def build(self, request: BuildRequest) -> dict:
        import torch

        mode = request.options.get("mode", "eager")
        if mode not in MODES:
            raise TangoError(f"pytorch mode '{mode}' is not one of {', '.join(MODES)}")
        if mode == "torchscript" and request.target.precision != "fp32":
            raise TangoError(
                f"pytorch torchscript artifacts are fp32 (frozen weights); use mode "
                f"eager for {request.target.precision}"
            )
        device = "cuda" if request.runner.hardware.accelerator.kind == "nvidia-gpu" else "cpu"
        if mode == "compile" and (refusal := compile_refusal(device)):
            raise TangoError(refusal)
        source = request.options.get("model_dir")
        if source is None:
            raise TangoError(
                "the pytorch backend needs the trained network (model_dir), not only the ONNX file"
            )
        out = request.out_dir
        out.mkdir(parents=True, exist_ok=True)
        model, info = _rebuild(Path(source))
        shutil.copy2(Path(source) / "model.json", out / "model.json")
        if mode == "torchscript":
            size = info.image_size
            with warnings.catch_warnings():  # TorchScript is deprecated, still the portable form
                warnings.simplefilter("ignore", FutureWarning)
                traced = torch.jit.trace(model, torch.zeros(request.target.batch, 3, size, size))
                traced = torch.jit.freeze(traced)
                traced.save(str(out / "model.ts"))
            weights = out / "model.ts"
        else:
            shutil.copy2(Path(source) / "best.pt", out / "best.pt")
            weights = out / "best.pt"
        manifest = {
            "engine": "pytorch",
            "precision": request.target.precision,
            "mode": mode,
            "device": device,
            "file": weights.name,
            "sha256": file_sha256(weights),
            "bytes": weights.stat().st_size,
            "torch": torch.__version__,
        }
        write_json(out / ARTIFACT, manifest)
        return manifest

    def load(self, artifact_dir: Path, threads: int | None = None) -> Predictor:
        import torch

        manifest = json.loads((artifact_dir / ARTIFACT).read_text())
        device = manifest.get("device", "cpu")
        if device == "cuda" and not torch.cuda.is_available():
            raise TangoError(
                f"{artifact_dir} is a CUDA {manifest['precision']} artifact; "
                "this host has no CUDA GPU"
            )
        if manifest["mode"] == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(artifact_dir / manifest["file"]), map_location=device)
        else:
            module, _ = _rebuild(artifact_dir)
            if manifest["mode"] == "compile":  # compiled at its first call, for this shape
                if refusal := compile_refusal(device):
                    raise TangoError(f"{artifact_dir}: {refusal}")
                module = torch.compile(module, dynamic=False)
        return PyTorchPredictor(module, threads, manifest["precision"], device)
