"""The compile stage: one artifact per target, built by that target's engine.

``engine: auto`` builds one artifact per (engine, precision) the runner offers, in
``compile/<target>/<engine>-<precision>/``; the bench stage measures them all and picks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tango_ci.compile import AUTO, BuildRequest, auto_candidates, check_request, get_compiler
from tango_ci.context import StageContext
from tango_ci.exceptions import TangoError
from tango_ci.plugins import get_task
from tango_ci.rundir import display, one_line_reason, write_json
from tango_ci.stages.compile_auto import (
    build_fastest_mode,
    build_searched_int8,
    searches,
    times_modes,
)

CALIBRATION_IMAGES = 128
CANDIDATES = "candidates.json"


def selected_targets(ctx: StageContext):
    """The targets this invocation works on (``--target`` narrows it for CI matrix jobs)."""
    names = ctx.options.get("targets")
    if not names:
        return list(ctx.spec.targets)
    return [ctx.spec.target(name) for name in names]


def candidate_dirs(compile_dir: Path, target) -> dict[str, Path]:
    """Artifact folders of ``target``: one, or one per candidate for ``engine: auto``."""
    if target.engine != AUTO:
        return {f"{target.engine}-{target.precision}": compile_dir / target.name}
    from tango_ci.rundir import read_json

    names = read_json(compile_dir / target.name / CANDIDATES)
    return {name: compile_dir / target.name / name for name in names}


def calibration_images(ctx: StageContext) -> np.ndarray:
    """A seeded sample of training inputs, preprocessed as the network expects them."""
    return get_task(ctx.spec.task).calibration(ctx, CALIBRATION_IMAGES)


def onnx_for(ctx: StageContext, target: str) -> Path:
    """The ONNX network ``target`` deploys: its specialised subnet's, else the export stage's."""
    specialised = ctx.run.model_dir(target) / "model.onnx"
    if specialised.parent.name == target and specialised.is_file():
        return specialised
    return ctx.run.stage_dir("export") / "model.onnx"


def check_onnx(path: Path) -> None:
    """Refuse a file the engines could not parse, before any of them is handed it."""
    import onnx

    try:
        onnx.checker.check_model(onnx.load(str(path), load_external_data=False))
    except Exception as exc:
        raise TangoError(
            f"{display(path)}: not a readable ONNX model ({one_line_reason(exc)})"
        ) from None


def run(ctx: StageContext) -> None:
    spec = ctx.spec
    ctx.run.require("compile", "export", "the ONNX model")
    targets = selected_targets(ctx)
    for target in targets:  # refuse everything unsupported before building anything
        check_request(target, spec.runners[target.runner])
        check_onnx(onnx_for(ctx, target.name))
    calibration = calibration_images(ctx)
    built = {}
    for target in targets:
        onnx_path = onnx_for(ctx, target.name)
        ctx.recorder.input_file(f"onnx/{target.name}", onnx_path)
        runner = spec.runners[target.runner]
        concrete = auto_candidates(target, runner) if target.engine == AUTO else [target]
        folder = ctx.folder / target.name
        made, failed = [], {}
        for candidate in concrete:
            name = f"{candidate.engine}-{candidate.precision}"
            out = folder / name if target.engine == AUTO else folder
            ctx.reporter.log(f"building {target.name}: {candidate.engine} {candidate.precision}")
            try:
                if target.engine == AUTO and searches(target, candidate):
                    manifest = build_searched_int8(
                        ctx, target, candidate, runner, onnx_path, calibration, out
                    )
                elif target.engine == AUTO and times_modes(target, candidate, runner):
                    manifest = build_fastest_mode(
                        ctx, candidate, runner, out, ctx.run.model_dir(target.name)
                    )
                else:
                    manifest = get_compiler(candidate.engine).build(
                        BuildRequest(
                            onnx_path=onnx_path,
                            out_dir=out,
                            target=candidate,
                            runner=runner,
                            calibration=calibration if candidate.precision == "int8" else None,
                            options={
                                "model_dir": ctx.run.model_dir(target.name),
                                "tuning_trials": target.tuning_trials,
                                "tuning_cache": ctx.run.project_runs / ".tuning",
                            },
                        )
                    )
            except TangoError as exc:
                if target.engine != AUTO:
                    raise
                # auto goes on without a candidate its engine cannot build; the report says so
                failed[name] = exc.message
                ctx.reporter.log(f"  {name} skipped: {exc.message}")
                continue
            made.append(name)
            built[f"{target.name}/{name}" if target.engine == AUTO else target.name] = manifest
            ctx.recorder.output_file(f"{target.name}/{name}", out / manifest["file"])
        if target.engine == AUTO:
            if not made:
                raise TangoError(
                    f"auto: no candidate of target {target.name} could be built: "
                    + "; ".join(f"{k}: {v}" for k, v in failed.items())
                )
            write_json(folder / CANDIDATES, made)
            write_json(folder / "failed.json", failed)
    ctx.recorder.summary["targets"] = built
