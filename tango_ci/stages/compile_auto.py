"""``engine: auto``'s int8 candidate: the recipe searched on this device, not a fixed one.

The compile stage calls :func:`build_searched_int8` for an auto target's onnxruntime int8
candidate. It scores recipes on the validation split with the task's evaluator (the test
split stays for the gate), writes the whole table to ``compile/<target>/recipes.json`` and
builds the chosen recipe into the candidate's folder; with no recipe within the drop limit it
raises, and the stage records why beside the other failed candidates.
"""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import numpy as np

from tango_ci.bench.optimise import (
    SearchProblem,
    SearchResult,
    build_recipe,
    one_line,
    search_recipes,
)
from tango_ci.compile import BuildRequest, capabilities, get_compiler
from tango_ci.compile.recipes import cpu_features
from tango_ci.context import StageContext
from tango_ci.exceptions import TangoError
from tango_ci.plugins import get_task
from tango_ci.rundir import read_json, write_json
from tango_ci.runners.latency_source import runner_here

RECIPES = "recipes.json"


def searches(target, candidate) -> bool:
    """Whether ``candidate`` (a concrete target of auto ``target``) is built by the recipe
    search: int8 on an engine that searches recipes, with a time budget."""
    return (
        target.optimise_seconds > 0
        and candidate.precision == "int8"
        and capabilities(candidate.engine).recipe_search
    )


def times_modes(target, candidate, runner) -> bool:
    """Whether auto times the engine's modes for ``candidate`` (fp32 on a CPU runner)."""
    return (
        target.optimise_seconds > 0
        and candidate.precision == "fp32"
        and len(capabilities(candidate.engine).timed_modes) > 1
        and runner.hardware.accelerator.kind == "none"
    )


def build_fastest_mode(ctx: StageContext, candidate, runner, out: Path, model_dir: Path) -> dict:
    """Build ``candidate`` in each of its engine's timed modes (PyTorch: eager, TorchScript,
    ``torch.compile``), time each here, keep the fastest in ``out``. A mode this device cannot
    build (no C++ compiler for torch.compile) is skipped with its reason; one is not started
    once the target's optimisation time is spent. How long each took from loading to its first
    answer is recorded too (torch.compile compiles then, in every process that loads it)."""
    import time

    from tango_ci.bench.optimise import time_predictor
    from tango_ci.compile import load_artifact

    modes = capabilities(candidate.engine).timed_modes
    timings: dict[str, float] = {}
    ready: dict[str, float] = {}
    skipped: dict[str, str] = {}
    size = ctx.spec.data.image_size
    data = np.zeros((candidate.batch, 3, size, size), np.float32)
    began = time.monotonic()
    for mode in modes:
        folder = out.parent / f"{out.name}-{mode}"
        shutil.rmtree(folder, ignore_errors=True)
        if timings and time.monotonic() - began > candidate.optimise_seconds:
            skipped[mode] = f"the target's {candidate.optimise_seconds:g} s were spent"
            continue
        try:
            get_compiler(candidate.engine).build(
                BuildRequest(
                    onnx_path=Path(),
                    out_dir=folder,
                    target=candidate,
                    runner=runner,
                    options={"model_dir": model_dir, "mode": mode},
                )
            )
            loading = time.perf_counter()
            predictor = load_artifact(folder, threads=runner.threads)
            try:
                predictor.run(data)  # torch.compile compiles here
                ready[mode] = round(time.perf_counter() - loading, 2)
                timings[mode] = time_predictor(
                    predictor, candidate.batch, ctx.spec.data.image_size, 1.0
                )
            finally:
                predictor.close()
        except Exception as exc:  # a mode this device cannot build or run is a row, not a stop
            why = exc.message if isinstance(exc, TangoError) else one_line(exc)
            if not timings and mode == modes[-1]:
                raise TangoError(f"no {candidate.engine} mode could be built here: {why}") from exc
            skipped[mode] = why
            ready.pop(mode, None)
            shutil.rmtree(folder, ignore_errors=True)
            ctx.reporter.log(f"  {candidate.engine} {mode} skipped: {why}")
    best = min(timings, key=timings.__getitem__)
    ctx.reporter.log(
        f"  {candidate.engine} modes: "
        + ", ".join(f"{m} {ms:.3g} ms (ready in {ready[m]:g} s)" for m, ms in timings.items())
    )
    shutil.rmtree(out, ignore_errors=True)
    (out.parent / f"{out.name}-{best}").rename(out)
    for mode in modes:
        shutil.rmtree(out.parent / f"{out.name}-{mode}", ignore_errors=True)
    manifest = read_json(out / "artifact.json")
    manifest["modes_timed_ms"] = timings
    manifest["modes_ready_s"] = ready
    if skipped:
        manifest["modes_skipped"] = skipped
    write_json(out / "artifact.json", manifest)
    return manifest


def build_searched_int8(
    ctx: StageContext,
    target,
    candidate,
    runner,
    onnx_path: Path,
    calibration: np.ndarray,
    out: Path,
) -> dict:
    """Search int8 recipes for ``target`` here and build the chosen one into ``out``."""
    task = get_task(ctx.spec.task)
    if "split" not in inspect.signature(task.evaluator).parameters:
        raise TangoError(
            f"the {ctx.spec.task} task's evaluator cannot score the validation split, "
            "so no recipe can be searched (set optimise_seconds: 0 for the fixed recipe)"
        )
    evaluator = task.evaluator(ctx, ctx.run.model_dir(target.name), "val")
    name = evaluator.quality.name
    work = ctx.folder / target.name / "recipe-search"
    if work.exists():
        shutil.rmtree(work)
    problem = SearchProblem(
        onnx_path=onnx_path,
        work=work,
        target=candidate,
        runner=runner,
        calibration=calibration,
        image_size=ctx.spec.data.image_size,
        score=lambda predictor: evaluator.evaluate(predictor, candidate.batch)[name],
        reference=float(evaluator.reference),
        higher_is_better=evaluator.quality.higher_is_better,
        max_drop=target.constraints.max_accuracy_drop,
        time_budget_s=target.optimise_seconds,
        features=cpu_features(),
    )
    ctx.reporter.log(
        f"searching int8 recipes for {target.name} on the validation split "
        f"({evaluator.size} images, reference {evaluator.quality.label} {problem.reference:.4f}, "
        f"limit {problem.max_drop:g}, budget {problem.time_budget_s:g} s)"
    )
    here, why = runner_here(runner)
    if not here:
        ctx.reporter.log(
            f"  warning: this host is not runner '{runner.name}' ({why}); the recipe timings are "
            "this host's: run compile on the runner for the device's own choice"
        )
    result = search_recipes(problem, ctx.reporter)
    table = recipe_table(problem, result, evaluator)
    table["timed_on_runner"] = here
    write_json(ctx.folder / target.name / RECIPES, table)
    shutil.rmtree(work, ignore_errors=True)
    if result.best is None:
        closest = min(
            (r for r in result.rows if "drop" in r and r.get("drop") is not None),
            key=lambda r: r["drop"],
            default=None,
        )
        detail = f"; closest: {closest['recipe']}, drop {closest['drop']:.4f}" if closest else ""
        raise TangoError(
            f"no int8 recipe kept the validation {evaluator.quality.label} drop within "
            f"{problem.max_drop:g}{detail}"
        )
    return build_recipe(problem, result.best, out)


def recipe_table(problem: SearchProblem, result: SearchResult, evaluator) -> dict:
    """``recipes.json``: every candidate with its verdict, and what the search ran on."""
    rows = [{k: v for k, v in row.items() if k != "artifact"} for row in result.rows]
    return {
        "split": evaluator.split,
        "images": evaluator.size,
        "metric": evaluator.quality.label,
        "reference": problem.reference,
        "max_drop": problem.max_drop,
        "time_budget_s": problem.time_budget_s,
        "stopped": result.stopped,
        "fp32_ms": result.fp32_ms,
        "batch": problem.target.batch,
        "threads": problem.runner.threads,
        "cpu": problem.features,
        "chosen": result.best.to_json() if result.best else None,
        "rows": rows,
    }
