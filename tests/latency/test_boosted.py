"""``kernel-boosted``: trees on the network summary correct what a sum of kernels cannot see,
and a file's trees are checked before a prediction walks them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tango_ci.latency import LatencyModel, LatencyModelError, Sample, load_model, write_model
from tango_ci.latency._boosted import SUMMARY, TREES, BoostedKernels
from tango_ci.latency.model import cross_validate
from tests.latency.helpers import TAILS


def _networks(count: int, seed: int) -> list[Sample]:
    """Kernel sums, except that a network with much concatenation runs 1.6x slower (a memory
    effect of the whole graph that no single kernel's cost explains)."""
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(count):
        conv = float(rng.uniform(1, 50))
        concats = float(rng.integers(0, 12))
        features = {
            "conv-k3-s1": [float(rng.integers(2, 20)), conv, conv / 10],
            "concat": [concats, 0.0, concats / 5],
        }
        base = 0.1 + 0.05 * conv + 0.01 * concats
        found.append(Sample(features, base * (1.6 if concats >= 6 else 1.0)))
    return found


def test_trees_correct_what_the_kernel_sum_cannot_see() -> None:
    data = _networks(80, seed=1)
    regression = cross_validate("kernel-regression", data, [])
    boosted = cross_validate("kernel-boosted", data, [])
    assert boosted["within_10"] > regression["within_10"] + 0.2
    assert boosted["mape"] < regression["mape"] * 0.7


def _written(tmp_path: Path) -> Path:
    predictor = BoostedKernels()
    predictor.fit(_networks(40, seed=2), [])
    path = tmp_path / "model.json"
    write_model(path, LatencyModel("r", "onnxruntime", "fp32", 1, predictor, dict(TAILS)))
    return path


def test_a_written_boosted_model_predicts_the_same_after_loading(tmp_path: Path) -> None:
    path = _written(tmp_path)
    loaded = load_model(path)
    sample = _networks(5, seed=3)
    fresh = BoostedKernels.from_parameters(json.loads(path.read_text())["parameters"])
    assert [loaded.predictor.predict(s.features) for s in sample] == [
        fresh.predict(s.features) for s in sample
    ]
    assert len(loaded.predictor.trees) == TREES


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: p["trees"][0]["yes"].__setitem__(0, 10_000), "points outside"),
        (lambda p: p["trees"][0]["feature"].__setitem__(0, len(SUMMARY)), "points outside"),
        (lambda p: p["trees"][0]["value"].append(0.5), "differ in length"),
        (lambda p: p.__setitem__("summary", ["log_calls"]), "another network summary"),
        (lambda p: p["trees"][0]["value"].__setitem__(0, 1e6), "at parameters/trees/0/value"),
        (lambda p: p["trees"].append({"feature": [-1]}), f"at parameters/trees/{TREES}"),
    ],
)
def test_a_tree_that_could_misroute_a_prediction_is_refused(
    tmp_path: Path, change, reason: str
) -> None:
    path = _written(tmp_path)
    data = json.loads(path.read_text())
    change(data["parameters"])
    path.write_text(json.dumps(data))
    with pytest.raises(LatencyModelError) as refused:
        load_model(path)
    message = str(refused.value)
    assert "\n" not in message and "model.json" in message and reason in message


def test_a_value_equal_to_a_threshold_goes_where_xgboost_sends_it() -> None:
    """xgboost reads features as float32 and splits at feature values: 0.3 is not below the
    float32 threshold 0.3 (0.300000012 in the dump), though in float64 it is."""
    from tango_ci.latency._boosted import _margin

    tree = {
        "feature": [0, -1, -1],
        "threshold": [float(np.float32(0.3)), 0.0, 0.0],
        "yes": [1, 0, 0],
        "no": [2, 0, 0],
        "value": [0.0, -1.0, 1.0],
    }
    assert _margin([tree], [0.3]) == 1.0
    assert _margin([tree], [0.29]) == -1.0


def test_the_stored_trees_predict_what_xgboost_predicted_when_fitted() -> None:
    """fit() compares its flattened trees with the booster on every training network and
    refuses a difference; float-valued work makes every split a float32 question."""
    data = _networks(60, seed=4)
    predictor = BoostedKernels()
    predictor.fit(data, [])  # raises if a walked prediction differs from xgboost's
    assert len(predictor.trees) == TREES
