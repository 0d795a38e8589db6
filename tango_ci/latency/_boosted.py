"""``kernel-boosted``: the kernel regression, corrected by boosted trees on the whole network.

A sum of kernel costs misses what depends on the network as a whole: cache reuse between
layers, how an engine fuses or reorders a graph, quantise/dequantise pairs between int8 and float
operators. Small gradient-boosted trees learn the log ratio of measured to summed latency from
a summary of the network (its totals, each kernel kind's share of calls, work and traffic, and
the sum itself). They are trained with xgboost on the device and stored as plain arrays, so
predicting needs neither xgboost nor anything but numbers from the file.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tango_ci.latency._base import Features, Sample
from tango_ci.latency._kernels import KernelRegression

KINDS = (
    "conv",
    "dwconv",
    "gconv",
    "linear",
    "add",
    "mul",
    "concat",
    "resize",
    "maxpool",
    "averagepool",
    "globalaveragepool",
    "relu",
    "hardswish",
    "hardsigmoid",
    "sigmoid",
    "split",
    "slice",
    "reshape",
    "transpose",
    "softmax",
    "shape",
)
SUMMARY = (
    "log_calls",
    "log_mmacs",
    "log_melems",
    "log_sum_ms",
    *(f"{kind}_{part}" for kind in KINDS for part in ("calls", "macs", "elems")),
)
TREES = 150
TREE_DEPTH = 3
LEARNING_RATE = 0.05


def summary(features: Features, summed_ms: float) -> list[float]:
    """The network as :data:`SUMMARY` numbers: totals, each kind's shares, the kernel sum."""
    totals = [sum(v[i] for v in features.values()) for i in range(3)]
    row = [*(math.log1p(t) for t in totals), math.log(max(summed_ms, 1e-6))]
    for kind in KINDS:
        rows = [v for key, v in features.items() if key.split("-", 1)[0] == kind]
        row += [sum(v[i] for v in rows) / totals[i] if totals[i] > 0 else 0.0 for i in range(3)]
    return row


def _flatten(tree: dict[str, Any]) -> dict[str, list]:
    """An xgboost JSON tree as parallel arrays; a leaf has feature -1 and its value."""
    nodes: dict[int, dict[str, Any]] = {}

    def walk(node: dict[str, Any]) -> None:
        nodes[node["nodeid"]] = node
        for child in node.get("children", []):
            walk(child)

    walk(tree)
    order = sorted(nodes)
    index = {nodeid: i for i, nodeid in enumerate(order)}
    arrays: dict[str, list] = {"feature": [], "threshold": [], "yes": [], "no": [], "value": []}
    for nodeid in order:
        node = nodes[nodeid]
        leaf = "leaf" in node
        arrays["feature"].append(-1 if leaf else int(node["split"].lstrip("f")))
        arrays["threshold"].append(0.0 if leaf else float(node["split_condition"]))
        arrays["yes"].append(0 if leaf else index[node["yes"]])
        arrays["no"].append(0 if leaf else index[node["no"]])
        arrays["value"].append(float(node["leaf"]) if leaf else 0.0)
    return arrays


def _tree_value(tree: dict[str, list], row: list[float]) -> float:
    node = 0
    for _ in range(len(tree["feature"])):  # a malformed tree cannot loop for ever
        feature = tree["feature"][node]
        if feature < 0:
            return float(tree["value"][node])
        node = tree["yes"][node] if row[feature] < tree["threshold"][node] else tree["no"][node]
    return 0.0


class BoostedKernels(KernelRegression):
    method = "kernel-boosted"

    def __init__(self, *args: Any, trees: list[dict] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.trees = trees or []

    def fit(self, networks: list[Sample], blocks: list[Sample]) -> None:
        import json

        import xgboost

        super().fit(networks, blocks)
        summed = [KernelRegression.predict(self, s.features) for s in networks]
        rows = np.array([summary(s.features, m) for s, m in zip(networks, summed, strict=True)])
        target = np.log([s.p50_ms for s in networks]) - np.log(np.maximum(summed, 1e-6))
        booster = xgboost.train(
            {
                "max_depth": TREE_DEPTH,
                "eta": LEARNING_RATE,
                "subsample": 0.8,
                "base_score": 0.0,
                "nthread": 1,
                "seed": 0,
            },
            xgboost.DMatrix(rows, target),
            TREES,
        )
        self.trees = [_flatten(json.loads(t)) for t in booster.get_dump(dump_format="json")]

    def predict(self, features: Features) -> float:
        summed = KernelRegression.predict(self, features)
        row = summary(features, summed)
        return summed * math.exp(sum(_tree_value(tree, row) for tree in self.trees))

    def parameters(self) -> dict[str, Any]:
        return super().parameters() | {"summary": list(SUMMARY), "trees": self.trees}

    def _load_extra(self, parameters: dict[str, Any]) -> None:
        if parameters["summary"] != list(SUMMARY):
            raise ValueError("its trees read another network summary than this version's")
        for number, tree in enumerate(parameters["trees"]):
            size = len(tree["feature"])
            if any(len(tree[k]) != size for k in ("threshold", "yes", "no", "value")):
                raise ValueError(f"tree {number}: its arrays differ in length")
            if any(not 0 <= i < size for i in tree["yes"] + tree["no"]) or any(
                f >= len(SUMMARY) for f in tree["feature"]
            ):
                raise ValueError(f"tree {number}: a node points outside the tree or summary")
        self.trees = parameters["trees"]
