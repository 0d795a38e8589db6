"""``engine: auto``'s recipe search: the fastest int8 build on this device within the drop limit.

1. Every base recipe the CPU's features suggest (:func:`~tango_ci.compile.recipes.base_recipes`)
   is quantised (one calibration shared) and timed here.
2. In order of latency, each is scored on the validation split (the test split stays for the
   gate); the first within ``max_drop`` is accepted and everything slower is pruned unscored.
3. When none is within the limit, the most accurate of the nearly fastest is rescued: other
   calibrations first, then its layers are kept in float one at a time, the most
   error-adding first (:mod:`tango_ci.bench._sensitivity`), until the drop holds; a step no
   faster than fp32 ends it (fp32 is a candidate of its own).
4. The winner's session options (graph optimisation level, spinning) are timed too.

Every candidate is a row of the table (recipe, latency, drop, size, verdict and why), which the
compile stage writes beside the artifact and the report shows. A time budget bounds it all.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tango_ci.bench._sensitivity import rank_layers
from tango_ci.compile import BuildRequest, get_compiler, load_artifact
from tango_ci.compile.quantisation import Quantiser
from tango_ci.compile.recipes import CALIBRATIONS, Recipe, SessionRecipe, base_recipes
from tango_ci.progress import Reporter

#: a session option must beat the default by this much to be chosen (timing noise is ~2%)
SESSION_GAIN = 0.03
#: the recipe rescued by calibration and fallback is the most accurate of those within this
#: factor of the fastest base recipe's latency
RESCUE_LATENCY = 1.15


@dataclass
class SearchProblem:
    """What the search needs: the network, the device's limits and how to score an artifact."""

    onnx_path: Path
    work: Path
    target: Any  # TargetSpec (engine, precision, batch, constraints)
    runner: Any  # RunnerSpec
    calibration: np.ndarray
    image_size: int
    #: quality of a loaded artifact on the validation split, in the task's metric
    score: Callable[[Any], float]
    reference: float  # the trained network's quality on the same images (PyTorch fp32)
    higher_is_better: bool = True
    max_drop: float = 0.02
    time_budget_s: float = 300.0
    features: dict[str, Any] = field(default_factory=dict)
    timing_s: float = 1.0
    #: an int8 step no faster than onnxruntime fp32 ends the fallback: fp32 is a candidate of
    #: its own and wins at no drop (off only where fp32 is not on offer)
    stop_at_fp32: bool = True

    def drop(self, value: float) -> float:
        return (self.reference - value) if self.higher_is_better else (value - self.reference)


@dataclass
class SearchResult:
    best: Recipe | None
    rows: list[dict]
    fp32_ms: float | None
    stopped: str | None = None  # why the search ended before trying everything

    @property
    def best_row(self) -> dict | None:
        return next((r for r in self.rows if r.get("chosen")), None)


class _Search:
    def __init__(self, problem: SearchProblem, reporter: Reporter | None) -> None:
        self.p = problem
        self.reporter = reporter
        self.deadline = time.monotonic() + problem.time_budget_s
        self.rows: list[dict] = []
        self.best: dict | None = None
        self.quantiser = Quantiser(
            problem.onnx_path, problem.work / "quantiser", problem.calibration
        )
        self.stopped: str | None = None
        self.fp32_ms: float | None = None
        self._count = 0

    # ---------------------------------------------------------------- helpers
    def log(self, message: str) -> None:
        if self.reporter is not None:
            self.reporter.log(message)

    def out_of_time(self) -> bool:
        if time.monotonic() > self.deadline:
            self.stopped = self.stopped or f"time budget of {self.p.time_budget_s:g} s spent"
            return True
        return False

    def build(self, recipe: Recipe) -> tuple[Path, dict]:
        self._count += 1
        out = self.p.work / f"candidate-{self._count:03d}"
        return out, build_recipe(self.p, recipe, out, self.quantiser)

    def time(self, artifact: Path) -> float:
        predictor = load_artifact(artifact, threads=self.p.runner.threads)
        try:
            return time_predictor(
                predictor, self.p.target.batch, self.p.image_size, self.p.timing_s
            )
        finally:
            predictor.close()

    def row(self, recipe: Recipe, **fields: Any) -> dict:
        row = {"recipe": recipe.label, "recipe_json": recipe.to_json(), **fields}
        self.rows.append(row)
        return row

    def tidy(self) -> None:
        """Delete the artifacts of settled rows (a search on a large network would otherwise
        keep tens of copies of it); the best so far and unscored rows stay."""
        for row in self.rows:
            if row.get("artifact") and row is not self.best and row["status"] != "timed":
                shutil.rmtree(row.pop("artifact"), ignore_errors=True)

    def candidate(self, recipe: Recipe) -> dict:
        """Build and time ``recipe``; the row, not yet scored."""
        self.tidy()
        try:
            artifact, manifest = self.build(recipe)
            latency = self.time(artifact)
        except Exception as exc:  # a recipe this onnxruntime cannot build or run: a row
            return self.row(recipe, status="failed", reason=one_line(exc))
        return self.row(
            recipe,
            status="timed",
            p50_ms=latency,
            size_mb=manifest["bytes"] / 2**20,
            artifact=str(artifact),
        )

    def score(self, row: dict) -> bool:
        """Score a timed row; True when it is within the drop limit (and so the new best)."""
        if self.best is not None and row["p50_ms"] >= self.best["p50_ms"]:
            row.update(status="pruned", reason=f"slower than {self.best['recipe']}")
            return False
        predictor = load_artifact(Path(row["artifact"]), threads=self.p.runner.threads)
        try:
            value = float(self.p.score(predictor))
        finally:
            predictor.close()
        drop = self.p.drop(value)
        row.update(quality=value, drop=drop)
        if drop <= self.p.max_drop:
            row.update(status="accepted", reason=f"drop {drop:.4f} within {self.p.max_drop:g}")
            self.best = row
            return True
        row.update(
            status="rejected",
            reason=(
                f"drop {drop:.4f} over the limit {self.p.max_drop:g} "
                f"by {drop - self.p.max_drop:.4f}"
            ),
        )
        return False

    # ---------------------------------------------------------------- phases
    def run(self) -> SearchResult:
        fp32 = self.p.work / "fp32"
        get_compiler(self.p.target.engine).build(
            BuildRequest(
                onnx_path=self.p.onnx_path,
                out_dir=fp32,
                target=replace(self.p.target, precision="fp32"),
                runner=self.p.runner,
            )
        )
        self.fp32_ms = self.time(fp32)
        self.log(f"  recipe search: fp32 {self.fp32_ms:.3g} ms; timing the base recipes")
        images = min(len(self.p.calibration), 128)
        bases = [
            replace(r, calibration=self.p.target.calibration, calibration_images=images)
            for r in base_recipes(self.p.features)
        ]
        timed = []
        for recipe in bases:
            if self.out_of_time():
                break
            row = self.candidate(recipe)
            if row["status"] == "timed":
                timed.append(row)
                self.log(f"  {row['recipe']}: {row['p50_ms']:.3g} ms")
        timed.sort(key=lambda r: r["p50_ms"])
        for row in timed:
            if self.best is not None or self.out_of_time():
                row.update(status="pruned", reason=self._prune_reason())
                continue
            if not self.score(row):
                self.log(f"  {row['recipe']}: {row['reason']}")
        rejected = [r for r in timed if r["status"] == "rejected"]
        if self.best is None and rejected:
            # rescue the most accurate of the nearly fastest: fallback only slows it down
            fast = [r for r in rejected if r["p50_ms"] <= timed[0]["p50_ms"] * RESCUE_LATENCY]
            self.rescue(min(fast or rejected, key=lambda r: r["drop"]))
        if self.best is not None:
            self.tune_session()
            self.best["chosen"] = True
        best = Recipe.from_json(self.best["recipe_json"]) if self.best else None
        return SearchResult(best=best, rows=self.rows, fp32_ms=self.fp32_ms, stopped=self.stopped)

    def _prune_reason(self) -> str:
        if self.best is not None:
            return f"slower than {self.best['recipe']}"
        return self.stopped or "not reached"

    def rescue(self, rejected: dict) -> None:
        """Other calibrations, then float fallback layer by layer, from ``rejected``."""
        base = Recipe.from_json(rejected["recipe_json"])
        closest = rejected
        for method in CALIBRATIONS:
            if method == base.calibration or self.out_of_time():
                continue
            row = self.candidate(replace(base, calibration=method))
            if row["status"] != "timed":
                continue
            if self.score(row):
                return
            self.log(f"  {row['recipe']}: {row['reason']}")
            if row["drop"] < closest["drop"]:
                closest = row
        self.fallback(Recipe.from_json(closest["recipe_json"]))

    def fallback(self, recipe: Recipe) -> None:
        if self.out_of_time():
            return
        qdq = self.quantiser.quantise(
            replace(recipe, format="qdq"), self.p.work / "sensitivity-qdq.onnx"
        )
        ranked = rank_layers(self.quantiser.prepared, qdq, self.p.calibration, self.p.work)
        self.log(
            "  most error-adding layers: "
            + ", ".join(f"{name} ({added:+.3f})" for name, added in ranked[:3])
        )
        for name, _ in ranked:
            if self.out_of_time():
                return
            recipe = recipe.with_float(name)
            row = self.candidate(recipe)
            if row["status"] != "timed":
                return
            if self.p.stop_at_fp32 and self.fp32_ms and row["p50_ms"] >= self.fp32_ms:
                row.update(status="pruned", reason="no faster than fp32")
                return
            if self.score(row):
                self.log(f"  {row['recipe']}: accepted, drop {row['drop']:.4f}")
                return
            if row["status"] == "pruned":
                return

    def tune_session(self) -> None:
        assert self.best is not None
        recipe = Recipe.from_json(self.best["recipe_json"])
        best_ms = self.best["p50_ms"]
        for level in ("all", "extended"):
            for spinning in (True, False):
                session = SessionRecipe(graph_optimization=level, spinning=spinning)
                if session == recipe.session or self.out_of_time():
                    continue
                row = self.candidate(replace(recipe, session=session))
                if row["status"] != "timed":
                    continue
                row["quality"], row["drop"] = self.best.get("quality"), self.best.get("drop")
                label = f"session {level}, spinning {'on' if spinning else 'off'}"
                row["recipe"] = f"{recipe.label} ({label})"
                if row["p50_ms"] < best_ms * (1 - SESSION_GAIN):
                    best_ms = row["p50_ms"]
                    row.update(status="accepted", reason=f"{label}: same network, faster")
                    self.best = row
                else:
                    row.update(status="pruned", reason=f"{label}: not {SESSION_GAIN:.0%} faster")


def build_recipe(
    problem: SearchProblem, recipe: Recipe, out: Path, quantiser: Quantiser | None = None
) -> dict:
    """The artifact of ``recipe`` for ``problem``'s network and target, built into ``out``
    (``quantiser``: one already calibrated, shared between the search's builds)."""
    options: dict[str, Any] = {"recipe": recipe}
    if quantiser is not None:
        options["quantiser"] = quantiser
    return get_compiler(problem.target.engine).build(
        BuildRequest(
            onnx_path=problem.onnx_path,
            out_dir=out,
            target=problem.target,
            runner=problem.runner,
            calibration=problem.calibration,
            options=options,
        )
    )


def search_recipes(problem: SearchProblem, reporter: Reporter | None = None) -> SearchResult:
    """Search int8 recipes for ``problem`` on this host; see the module's docstring."""
    problem.work.mkdir(parents=True, exist_ok=True)
    return _Search(problem, reporter).run()


def time_predictor(predictor, batch: int, size: int, seconds: float, min_runs: int = 10) -> float:
    """Median latency (ms) of ``predictor`` on a fixed random batch, after a warm-up."""
    data = np.random.default_rng(0).random((batch, 3, size, size), dtype=np.float32)
    for _ in range(3):
        predictor.run(data)
    samples: list[float] = []
    end = time.perf_counter() + seconds
    while len(samples) < min_runs or time.perf_counter() < end:
        start = time.perf_counter()
        predictor.run(data)
        samples.append((time.perf_counter() - start) * 1000.0)
        if len(samples) >= 2000:
            break
    return float(np.median(samples))


def one_line(exc: BaseException) -> str:
    """``Type: first line`` of an engine's error (a compiler's log can be pages long)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


__all__ = [
    "SearchProblem",
    "SearchResult",
    "build_recipe",
    "one_line",
    "search_recipes",
    "time_predictor",
]
