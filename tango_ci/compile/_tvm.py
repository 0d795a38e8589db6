"""Apache TVM (Relax): ONNX -> Relax -> a compiled library for the runner's target, run by the
Relax virtual machine. Optional MetaSchedule tuning keeps its database as an artifact keyed by
(model hash, target), so a second build of the same model for the same device reuses it.

Untuned TVM code on x86 CPUs is far slower than onnxruntime; reports say so rather than hide it.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np

from tango_ci.compile._base import ARTIFACT, BaseCompiler, BuildRequest, Predictor
from tango_ci.compile._capabilities import TVM
from tango_ci.exceptions import TangoError
from tango_ci.rundir import file_sha256, write_json

LIBRARY = "model.so"


def parse_target(text: str, threads: int | None = None) -> dict:
    """``llvm -mcpu=znver3`` or ``cuda -arch=sm_87`` -> TVM's dict form.

    TVM 0.27 rejects the command-line string form; runner files keep it because that is how
    people write targets.
    """
    words = shlex.split(text)
    if not words:
        raise TangoError("empty TVM target")
    target: dict = {"kind": words[0]}
    for word in words[1:]:
        if not word.startswith("-") or "=" not in word:
            raise TangoError(f"TVM target option '{word}' is not of the form -key=value")
        key, value = word.lstrip("-").split("=", 1)
        target[key] = value
    if target["kind"] == "llvm" and threads and "num-cores" not in target:
        target["num-cores"] = threads
    if target["kind"] == "cuda":
        target.setdefault("host", {"kind": "llvm"})
    return target


def tuning_key(onnx_path: Path, target: dict, batch: int) -> str:
    import hashlib

    blob = json.dumps(target, sort_keys=True) + f"|batch={batch}|" + file_sha256(onnx_path)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class TvmPredictor(Predictor):
    """The bundle runtime's TVM runner, so bench and a deployed bundle run the same code."""

    def __init__(self, library: Path, device_kind: str, batch: int = 1) -> None:
        from tango_ci.runtime.engines import TvmRunner

        self._runner = TvmRunner(library, device_kind, batch)

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._runner.run(batch)


UNTUNED_ADVICE = (
    "TVM ran untuned (`tuning_trials: 0`): untuned TVM code on x86 CPUs is far "
    "slower than onnxruntime; set `tuning_trials` to let MetaSchedule tune it "
    "on the device."
)


class TvmCompiler(BaseCompiler):
    capabilities = TVM

    def runner_problem(self, entry, accelerator: str) -> tuple[str, str] | None:
        if (entry.get("target", "").split() or [""])[0] == "cuda" and accelerator != "nvidia-gpu":
            return "target", "a cuda TVM target needs hardware.accelerator.kind: nvidia-gpu"
        return None

    def probe(self, accelerator) -> dict:
        """The TVM target of this host: its GPU's architecture, else LLVM for its CPU."""
        if accelerator["kind"] == "nvidia-gpu":
            return {"target": f"cuda -arch=sm_{accelerator['compute_capability'].replace('.', '')}"}
        from tvm.target import codegen

        return {"target": f"llvm -mcpu={codegen.llvm_get_system_cpu()}"}

    def build(self, request: BuildRequest) -> dict:
        import onnx
        import tvm
        from tvm.relax.frontend.onnx import from_onnx

        engine = request.runner.engine("tvm")
        target_text = engine.target if engine and engine.target else "llvm"
        target_dict = parse_target(target_text, request.runner.threads)
        batch = request.target.batch
        model = onnx.load(str(request.onnx_path))
        input_name = model.graph.input[0].name
        dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        shape = [batch, *dims[1:]]  # TVM builds for the target's fixed batch
        try:
            # weights become constants of the module, so the library is self-contained
            mod = from_onnx(model, shape_dict={input_name: shape}, keep_params_in_input=False)
        except Exception as exc:
            raise TangoError(
                f"TVM {tvm.__version__} cannot import "
                f"{request.onnx_path.name}: {type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[-1][:200]}"
            ) from None
        out = request.out_dir
        out.mkdir(parents=True, exist_ok=True)
        target = tvm.target.Target(target_dict)
        trials = int(request.options.get("tuning_trials", 0) or 0)
        tuning: dict = {"trials": trials}
        with target:
            if trials > 0:
                from tango_ci.compile._tvm_tuning import tune

                database = Path(request.options.get("tuning_cache") or out / "tuning") / tuning_key(
                    request.onnx_path, target_dict, batch
                )
                mod, tuning = tune(mod, target, database, trials)
            executable = tvm.compile(mod, target=target)
        library = out / LIBRARY
        try:  # TVM links the module with the host's C++ compiler (CXX, else g++)
            executable.export_library(str(library))
        except FileNotFoundError as exc:
            raise TangoError(
                f"TVM links its module with a C++ compiler and '{exc.filename}' is not on PATH "
                "(install g++, or set CXX to one)"
            ) from None
        manifest = {
            "engine": "tvm",
            "precision": request.target.precision,
            "file": LIBRARY,
            "sha256": file_sha256(library),
            "bytes": library.stat().st_size,
            "target": target_dict,
            "target_string": target_text,
            "batch": batch,
            "input_shape": shape,
            "device": "cuda" if target_dict["kind"] == "cuda" else "cpu",
            "tvm": tvm.__version__,
            "tuning": tuning,
        }
        if not trials and target_dict["kind"] != "cuda":
            manifest["advice"] = UNTUNED_ADVICE
        write_json(out / ARTIFACT, manifest)
        return manifest

    def load(self, artifact_dir: Path, threads: int | None = None) -> Predictor:
        manifest = json.loads((artifact_dir / ARTIFACT).read_text())
        return TvmPredictor(
            artifact_dir / manifest["file"], manifest["device"], int(manifest.get("batch", 1))
        )
