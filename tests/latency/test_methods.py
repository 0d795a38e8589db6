"""The latency methods on synthetic measurements whose p50 is an exact non-negative linear
function of per-key features: what each recovers, what the FLOPs baseline misses, how a key
never seen is costed, which method is kept, and the yardsticks they are judged by."""

from __future__ import annotations

import numpy as np
import pytest

from tango_ci.latency import Sample, errors
from tango_ci.latency import _kernels as kernel_methods
from tango_ci.latency._flops import FlopsLinear
from tango_ci.latency._kernels import KernelRegression, KernelTable, columns_for
from tango_ci.latency.model import choose_method, cross_validate, fit

# cost per call, per million MACs and per million elements moved: a depthwise MAC costs
# six times a dense one, so latency is far from linear in the network's MACs
COSTS = {
    "conv-k3-s1": [0.010, 0.40, 0.05],
    "dwconv-k3-s1": [0.020, 2.50, 0.20],
    "relu-fused": [0.002, 0.00, 0.01],
    "add": [0.004, 0.00, 0.08],
}
NETWORK_OVERHEAD = 0.3
BLOCK_OVERHEAD = 0.1
SCALE, OFFSET = 1.3, 0.5  # whole networks as isolated blocks miss them (kernel-table)


def cost(features: dict[str, list[float]], costs: dict = COSTS) -> float:
    return sum(float(np.dot(costs[key], row)) for key, row in features.items())


def random_features(rng: np.random.Generator, keys: list[str]) -> dict[str, list[float]]:
    return {
        key: [
            float(rng.integers(1, 7)),
            float(rng.uniform(0.5, 20.0)) if "conv" in key else 0.0,
            float(rng.uniform(0.05, 3.0)),
        ]
        for key in keys
    }


def networks(count: int, seed: int = 0, *, scale: float = 1.0, offset: float = 0.0) -> list:
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(count):
        features = random_features(rng, list(COSTS))
        found.append(Sample(features, NETWORK_OVERHEAD + scale * cost(features) + offset))
    return found


def blocks(
    per_key: int = 6, seed: int = 1, costs: dict = COSTS, overhead: float = BLOCK_OVERHEAD
) -> list[Sample]:
    rng = np.random.default_rng(seed)
    found = []
    for key in costs:
        for _ in range(per_key):
            features = random_features(rng, [key])
            found.append(Sample(features, overhead + cost(features, costs)))
    return found


def held_out_errors(model, held: list[Sample]) -> dict[str, float]:
    return errors(model.predict_many(held), np.array([s.p50_ms for s in held]))


def test_kernel_regression_recovers_the_costs_and_predicts_unseen_networks() -> None:
    train, held = networks(30, seed=0), networks(15, seed=99)
    model = KernelRegression()
    model.fit(train, [])
    assert held_out_errors(model, held)["mape"] < 0.01
    predicted = model.predict_many(held)
    measured = np.array([s.p50_ms for s in held])
    assert np.all(np.abs(predicted / measured - 1) < 0.01)
    assert model.coefficients["dwconv-k3-s1"][1] == pytest.approx(2.5, rel=0.01)
    assert model.coefficients["conv-k3-s1"][1] == pytest.approx(0.4, rel=0.01)
    assert all(v >= 0 for row in model.coefficients.values() for v in row)


def test_flops_linear_misses_what_the_kernel_costs_see() -> None:
    train, held = networks(30, seed=0), networks(15, seed=99)
    kernel = fit("kernel-regression", train, [])
    flops = fit("flops-linear", train, [])
    assert isinstance(flops, FlopsLinear) and flops.per_mmac_ms > 0
    good, baseline = held_out_errors(kernel, held), held_out_errors(flops, held)
    assert baseline["mape"] > 0.05 and baseline["mape"] > 10 * good["mape"]
    assert baseline["within_10"] < good["within_10"] == 1.0


def test_flops_linear_is_exact_when_every_mac_costs_the_same() -> None:
    rng = np.random.default_rng(3)
    train = []
    for _ in range(10):
        macs = float(rng.uniform(1, 100))
        train.append(Sample({"conv-k3-s1": [1.0, macs, 0.0]}, 0.7 + 0.05 * macs))
    model = FlopsLinear()
    model.fit(train, [])
    assert model.per_mmac_ms == pytest.approx(0.05)
    assert model.overhead_ms == pytest.approx(0.7)
    assert model.predict({"a": [1.0, 10.0, 0.0], "b": [2.0, 30.0, 5.0]}) == pytest.approx(2.7)


def test_kernel_table_recovers_networks_from_blocks_after_calibration() -> None:
    train = networks(12, seed=0, scale=SCALE, offset=OFFSET)
    held = networks(15, seed=99, scale=SCALE, offset=OFFSET)
    model = KernelTable()
    model.fit(train, blocks())
    # the costs are the blocks' own, the calibration what whole networks add
    assert model.coefficients["dwconv-k3-s1"] == pytest.approx(COSTS["dwconv-k3-s1"], abs=1e-6)
    assert model.overhead_ms == pytest.approx(BLOCK_OVERHEAD, abs=1e-6)
    assert model.scale == pytest.approx(SCALE, rel=1e-3)
    assert held_out_errors(model, held)["mape"] < 0.01
    # uncalibrated, the sum of the blocks misses by about the scale
    raw = np.array([model.raw(s.features) for s in held])
    measured = np.array([s.p50_ms for s in held])
    assert np.all(measured / raw > 1.15)


def test_kernel_table_needs_blocks_and_regression_does_not() -> None:
    assert KernelTable.needs_blocks and not KernelRegression.needs_blocks
    assert not FlopsLinear.needs_blocks


def test_a_key_never_seen_is_costed_from_its_kind_and_listed() -> None:
    model = KernelRegression()
    model.fit(networks(30, seed=0), [])
    row = [2.0, 5.0, 1.0]
    assert model.unseen({"conv-k7-s1": row, "add": row}) == ["conv-k7-s1"]
    assert model.predict({"conv-k7-s1": row}) == pytest.approx(model.predict({"conv-k3-s1": row}))
    # a kind no fitted key has costs nothing, and is listed too; shape nodes are not
    assert model.predict({"softmax": row}) == pytest.approx(model.overhead_ms)
    assert model.unseen({"softmax": row, "shape": [3.0, 0.0, 0.0]}) == ["softmax"]
    assert model.unseen({key: row for key in COSTS}) == []


def test_an_unseen_key_costs_the_mean_of_its_kind_by_hand() -> None:
    costs = {"conv-k3-s1": [1.0, 2.0, 3.0], "conv-k5-s1": [3.0, 4.0, 5.0], "add": [0.5, 0, 1]}
    model = KernelRegression(dict(costs), overhead_ms=0.25, columns={k: k for k in costs})
    assert model.predict({"conv-k7-s1": [1.0, 1.0, 1.0]}) == pytest.approx(0.25 + 2 + 3 + 4)
    # a finer key than the model's depth is costed by its prefix, and is no stranger
    assert model.predict({"conv-k3-s1-c64-h8": [1.0, 1.0, 1.0]}) == pytest.approx(6.25)
    assert model.unseen({"conv-k3-s1-c64-h8": [1.0, 1.0, 1.0]}) == []
    table = KernelTable(dict(costs), 0.25, {k: k for k in costs}, scale=2.0, offset_ms=1.0)
    assert table.predict({"add": [2.0, 0.0, 3.0]}) == pytest.approx(2.0 * (0.25 + 4.0) + 1.0)


def test_a_rare_key_shares_the_column_of_its_prefix_or_kind() -> None:
    row = [1.0, 1.0, 1.0]
    samples = [Sample({"conv-k3-s1": row}, 1.0)] * 3 + [Sample({"conv-k9-s1": row}, 1.0)]
    assert columns_for(samples, 3) == {"conv-k3-s1": "conv-k3-s1", "conv-k9-s1": "conv"}
    fine = [Sample({"conv-k3-s1-c16": row}, 1.0)] * 2 + [Sample({"conv-k3-s1-c32": row}, 1.0)] * 2
    assert columns_for(fine, 4) == {"conv-k3-s1-c16": "conv-k3-s1", "conv-k3-s1-c32": "conv-k3-s1"}
    assert columns_for(fine, 2) == {"conv-k3-s1-c16": "conv-k3", "conv-k3-s1-c32": "conv-k3"}


def test_choose_method_prefers_the_table_and_short_keys_when_both_are_as_good() -> None:
    """Blocks that add up to the networks exactly: every kernel candidate is perfect."""
    train = networks(20, seed=0)
    method, options, scores = choose_method(train, blocks(overhead=NETWORK_OVERHEAD))
    assert (method, options) == ("kernel-table", {"depth": 2})  # the first, as good as any
    kernel_scores = [score for name, score in scores.items() if name != "flops-linear"]
    assert len(kernel_scores) == 12  # table, regression and boosted at key depths 2 to 5
    assert {s["within_10"] for n, s in scores.items() if n[-1] in "345"} == {1.0}
    assert scores["flops-linear"]["within_10"] < scores["kernel-table/3"]["within_10"]


def test_choose_method_without_blocks_keeps_the_regression() -> None:
    method, options, scores = choose_method(networks(20, seed=0), [])
    assert method == "kernel-regression" and options == {"depth": 2}
    assert not any(name.startswith("kernel-table") for name in scores)


def test_choose_method_drops_the_table_when_blocks_do_not_add_up() -> None:
    """Isolated depthwise blocks run ten times slower than inside a network (an engine that
    fuses across blocks): no single calibration mends that, the regression does."""
    misleading = dict(COSTS, **{"dwconv-k3-s1": [0.2, 25.0, 2.0]})
    train = networks(20, seed=0, scale=SCALE, offset=OFFSET)
    method, _, scores = choose_method(train, blocks(costs=misleading))
    assert method in ("kernel-regression", "kernel-boosted")
    table, regression = scores["kernel-table/3"], scores["kernel-regression/3"]
    assert regression["within_10"] > table["within_10"] + 0.02
    assert regression["mape"] < table["mape"]


def test_choose_method_keeps_finer_keys_when_channels_change_the_cost() -> None:
    """Narrow convolutions run far below peak: c16 costs three times c256 per MAC."""
    rng = np.random.default_rng(5)
    per_mmac = {"conv-k3-s1-c16": 1.5, "conv-k3-s1-c256": 0.5}
    train = []
    for _ in range(25):
        features = {key: [1.0, float(rng.uniform(1, 20)), 0.0] for key in per_mmac}
        p50 = 0.2 + sum(per_mmac[k] * row[1] for k, row in features.items())
        train.append(Sample(features, p50))
    method, options, scores = choose_method(train, [])
    assert (method, options) == ("kernel-regression", {"depth": 4})
    assert scores["kernel-regression/4"]["mape"] < 0.01 < scores["kernel-regression/3"]["mape"]


def test_cross_validation_predicts_each_network_without_its_fold() -> None:
    exact = cross_validate("kernel-regression", networks(20, seed=0), [])
    assert exact["count"] == 20 and exact["mape"] < 0.01
    # one outlier: whatever fold holds it is fitted without it and misses it
    outlier = networks(20, seed=0)
    outlier[7] = Sample(outlier[7].features, 3 * outlier[7].p50_ms)
    assert cross_validate("kernel-regression", outlier, [])["within_10"] <= 0.95


def test_blocks_weigh_less_than_networks_in_the_regression(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    train = networks(20, seed=0)
    slow_blocks = blocks(costs={k: [2 * v for v in row] for k, row in COSTS.items()})

    def network_mape(weight: float) -> float:
        monkeypatch.setattr(kernel_methods, "BLOCK_WEIGHT", weight)
        model = KernelRegression()
        model.fit(train, slow_blocks)
        return held_out_errors(model, train)["mape"]

    assert network_mape(0.5) < network_mape(1.0)


def test_errors_by_hand() -> None:
    measured = np.array([4.0, 8.0, 16.0, 16.0, 32.0])
    predicted = np.array([4.0, 8.25, 17.0, 14.0, 40.0])
    # relative errors 0, 1/32, 1/16, -1/8, 1/4: exact in binary
    found = errors(predicted, measured)
    assert found["count"] == 5
    assert found["mape"] == pytest.approx((0 + 1 / 32 + 1 / 16 + 1 / 8 + 1 / 4) / 5)
    assert found["within_5"] == pytest.approx(2 / 5)
    assert found["within_10"] == pytest.approx(3 / 5)
    assert found["rmse_ms"] == pytest.approx(np.sqrt((0 + 0.0625 + 1 + 4 + 64) / 5))
    relative = [0, 1 / 32, 1 / 16, 1 / 8, 1 / 4]
    assert found["rmspe"] == pytest.approx(np.sqrt(np.mean(np.square(relative))))
    assert found["spearman"] == pytest.approx(0.9746794, abs=1e-6)


def test_errors_have_no_rank_correlation_for_two_samples_or_a_constant() -> None:
    assert np.isnan(errors(np.array([1.0, 2.0]), np.array([1.0, 2.0]))["spearman"])
    assert np.isnan(errors(np.array([3.0, 3.0, 3.0]), np.array([1.0, 2.0, 4.0]))["spearman"])
    perfect = errors(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))
    assert (perfect["mape"], perfect["within_5"], perfect["spearman"]) == (0.0, 1.0, 1.0)
