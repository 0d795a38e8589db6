"""engine: auto's int8 recipe search, on a tiny network scored against its own fp32 outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tango_ci.bench._sensitivity import rank_layers
from tango_ci.bench.optimise import SearchProblem, search_recipes
from tango_ci.compile.recipes import Recipe, cpu_features
from tango_ci.spec import TargetSpec, find_repo_root, load_runner

SIZE = 16


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A tiny network, calibration images with rare huge pixels (so the input's quantisation
    step wipes out ordinary pixels) and ordinary validation images."""
    import torch

    from tango_ci.export import export_onnx
    from tango_ci.models import build_model

    folder = tmp_path_factory.mktemp("search")
    torch.manual_seed(0)
    model = build_model("resnet", "xs", 4).eval()
    export_onnx(model, folder / "m.onnx", (1, 3, SIZE, SIZE))
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((32, 3, SIZE, SIZE)).astype(np.float32)
    calibration[:, 0, 0, 0] = 400.0
    validation = rng.standard_normal((96, 3, SIZE, SIZE)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(validation)).numpy()
    return folder / "m.onnx", calibration, validation, expected


def _problem(case, tmp_path, max_drop: float, **fields) -> SearchProblem:
    network, calibration, validation, expected = case

    def fidelity(predictor) -> float:  # 1 - relative error of the logits: fp32 scores 1.0
        logits = predictor.run(validation)[0]
        return 1.0 - float(np.linalg.norm(logits - expected) / np.linalg.norm(expected))

    runner = load_runner(find_repo_root(Path.cwd()) / "runners" / "local-cpu.yaml")
    settings = {"time_budget_s": 60, "timing_s": 0.05, **fields}
    return SearchProblem(
        onnx_path=network,
        work=tmp_path / "work",
        target=TargetSpec(name="t", runner=runner.name, engine="onnxruntime", precision="int8"),
        runner=runner,
        calibration=calibration,
        image_size=SIZE,
        score=fidelity,
        reference=1.0,
        max_drop=max_drop,
        features=cpu_features(),
        **settings,
    )


def test_a_recipe_over_the_drop_limit_is_rejected_and_says_by_how_much(case, tmp_path):
    result = search_recipes(_problem(case, tmp_path, max_drop=0.0, stop_at_fp32=False))
    rejected = [r for r in result.rows if r["status"] == "rejected"]
    assert rejected, result.rows
    for row in rejected:
        assert row["drop"] > 0.0
        assert f"over the limit 0 by {row['drop']:.4f}" in row["reason"]
    accepted = [r for r in result.rows if r["status"] == "accepted"]
    assert all(r["drop"] <= 0.0 for r in accepted)
    if result.best is None:
        assert not any(r.get("chosen") for r in result.rows)


def test_the_fastest_recipe_within_the_limit_wins_and_slower_ones_are_not_scored(case, tmp_path):
    result = search_recipes(_problem(case, tmp_path, max_drop=1.0))
    base = [r for r in result.rows if "session" not in r["recipe"]]
    scored = [r for r in base if "drop" in r]
    assert len(scored) == 1  # the fastest is within a limit of 1.0; the rest cannot win
    timed = [r for r in base if r.get("p50_ms") is not None]
    assert scored[0]["p50_ms"] == min(r["p50_ms"] for r in timed)
    assert all(r["status"] == "pruned" for r in base if r is not scored[0])
    chosen = result.best_row
    assert chosen is not None and result.best == Recipe.from_json(chosen["recipe_json"])


def test_the_most_error_adding_layer_is_kept_in_float_first(case, tmp_path):
    network, calibration, _, _ = case
    problem = _problem(case, tmp_path, max_drop=0.05, stop_at_fp32=False)
    from tango_ci.compile.quantisation import Quantiser

    quantiser = Quantiser(network, tmp_path / "q", calibration)
    qdq = quantiser.quantise(Recipe(calibration_images=32), tmp_path / "qdq.onnx")
    ranked = rank_layers(quantiser.prepared, qdq, calibration, tmp_path)
    assert {name for name, _ in ranked} == set(quantiser.weighted_nodes)
    # the outlier pixels make the first convolution's quantised input useless
    assert ranked[0][0] == quantiser.weighted_nodes[0]
    result = search_recipes(problem)
    fallbacks = [r for r in result.rows if r["recipe_json"]["float_nodes"]]
    assert fallbacks, "the search never tried a float fallback"
    assert fallbacks[0]["recipe_json"]["float_nodes"][0] == quantiser.weighted_nodes[0]
    full = [r for r in result.rows if not r["recipe_json"]["float_nodes"] and "drop" in r]
    assert fallbacks[0]["drop"] < min(r["drop"] for r in full) - 0.02


def test_the_time_budget_stops_the_search_and_says_so(case, tmp_path):
    result = search_recipes(_problem(case, tmp_path, max_drop=0.0, time_budget_s=0.0))
    assert result.stopped == "time budget of 0 s spent"
    assert result.best is None
