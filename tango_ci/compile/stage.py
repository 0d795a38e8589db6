"""The compile stage: one artifact per target, built by that target's engine."""

from __future__ import annotations

import numpy as np

from tango_ci.compile import BuildRequest, check_request, get_compiler
from tango_ci.data.dataset import preprocess
from tango_ci.data.stage import load_arrays
from tango_ci.stage import StageContext

CALIBRATION_IMAGES = 128


def selected_targets(ctx: StageContext):
    """The targets this invocation works on (``--target`` narrows it for CI matrix jobs)."""
    names = ctx.options.get("targets")
    if not names:
        return list(ctx.spec.targets)
    return [ctx.spec.target(name) for name in names]


def run(ctx: StageContext) -> None:
    spec = ctx.spec
    ctx.run.require("compile", "export", "the ONNX model")
    onnx_path = ctx.run.stage_dir("export") / "model.onnx"
    targets = selected_targets(ctx)
    for target in targets:  # refuse everything unsupported before building anything
        check_request(target, spec.runners[target.runner])
    images, _ = load_arrays(ctx.run, "train")
    rng = np.random.default_rng(spec.search.seed)
    calibration = preprocess(images[rng.choice(len(images), min(CALIBRATION_IMAGES,
                                                                len(images)), replace=False)])
    ctx.recorder.input_file("onnx", onnx_path)
    built = {}
    for target in targets:
        ctx.reporter.log(f"building {target.name}: {target.engine} {target.precision}")
        out = ctx.folder / target.name
        manifest = get_compiler(target.engine).build(BuildRequest(
            onnx_path=onnx_path, out_dir=out, target=target, runner=spec.runners[target.runner],
            calibration=calibration if target.precision == "int8" else None,
            options={"model_dir": ctx.run.stage_dir("train")}))
        built[target.name] = manifest
        ctx.recorder.output_file(target.name, out / manifest["file"])
    ctx.recorder.summary["targets"] = built
