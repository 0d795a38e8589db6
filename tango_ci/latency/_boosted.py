"""``kernel-boosted``: the kernel regression, corrected by boosted trees on the whole network.

A sum of kernel costs misses what depends on the network as a whole: cache reuse between
layers, how an engine fuses or reorders a graph, quantise/dequantise pairs between int8 and float
operators. Small gradient-boosted trees learn the log ratio of measured to summed latency from
a summary of the network (its totals, the sum itself, each kernel kind's calls and traffic, and
a convolution's calls and work split by kernel size, stride, channels and output size). They
are trained with xgboost on the device and stored as plain arrays, so predicting needs neither
xgboost nor anything but numbers from the file.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tango_ci.exceptions import TangoError
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
#: the kinds whose work is split by kernel size, stride, channels and size in the summary
WEIGHTED = ("conv", "dwconv", "gconv", "linear")
#: key parts of a weighted kernel (see features.Kernel): kernel, stride, channels and output
#: size up to a power of two
PARTS = (
    *(f"k{k}" for k in (1, 3, 5, 7)),
    "s1",
    "s2",
    *(f"c{1 << n}" for n in range(11)),
    *(f"h{1 << n}" for n in range(11)),
)
SUMMARY = (
    "log_calls",
    "log_mmacs",
    "log_melems",
    "log_sum_ms",
    *(f"{kind}_{part}" for kind in (*KINDS, "batchnormalization") for part in ("calls", "elems")),
    *(f"{kind}_mmacs" for kind in WEIGHTED),
    *(
        f"{kind}-{part}_{what}"
        for kind in WEIGHTED
        for part in PARTS
        for what in ("calls", "mmacs")
    ),
)
#: PyTorch eager's feature set adds dense convolutions on oneDNN (see features.py); its summary
#: appends them, so models of other engines keep theirs
EAGER_SUMMARY = (
    *SUMMARY,
    "convbig_calls",
    "convbig_elems",
    "convbig_mmacs",
    *(f"convbig-{part}_{what}" for part in PARTS for what in ("calls", "mmacs")),
)
_EAGER_KINDS = ("convbig",)
_INDEXES = {names: {name: i for i, name in enumerate(names)} for names in (SUMMARY, EAGER_SUMMARY)}
TREES = 600
TREE_DEPTH = 3
LEARNING_RATE = 0.03


def summary(features: Features, summed_ms: float, names: tuple[str, ...] = SUMMARY) -> list[float]:
    """The network as :data:`SUMMARY` numbers: its totals, the kernel sum, each kind's calls
    and traffic, and a weighted kind's calls and work per kernel size, stride, channels and
    size (how efficiently an engine runs a convolution depends on all four, unevenly: int8
    kernels on ragged channel counts, say)."""
    index_of = _INDEXES[names]
    totals = [sum(v[i] for v in features.values()) for i in range(3)]
    row = [0.0] * len(names)
    row[:4] = [*(math.log1p(t) for t in totals), math.log(max(summed_ms, 1e-6))]
    for key, (calls, mmacs, melems) in features.items():
        kind, *parts = key.split("-")
        for name, value in ((f"{kind}_calls", calls), (f"{kind}_elems", melems)):
            if name in index_of:
                row[index_of[name]] += value
        if f"{kind}_mmacs" not in index_of:
            continue
        row[index_of[f"{kind}_mmacs"]] += mmacs
        for part in parts:
            for what, value in (("calls", calls), ("mmacs", mmacs)):
                index = index_of.get(f"{kind}-{part}_{what}")
                if index is not None:
                    row[index] += value
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


def _tree_value(tree: dict[str, list], row: np.ndarray) -> float:
    """The leaf value ``row`` (float32, as xgboost reads features) reaches. Thresholds compare
    in float32 too: xgboost splits at feature values, so a float64 comparison sends a value
    equal to a threshold the other way (in a real int8 profile that cost 11 points within
    ±10%)."""
    node = 0
    for _ in range(len(tree["feature"])):  # a malformed tree cannot loop for ever
        feature = tree["feature"][node]
        if feature < 0:
            return float(tree["value"][node])
        below = row[feature] < np.float32(tree["threshold"][node])
        node = tree["yes"][node] if below else tree["no"][node]
    return 0.0


def _margin(trees: list[dict[str, list]], row: list[float]) -> float:
    features = np.asarray(row, dtype=np.float32)
    return sum(_tree_value(tree, features) for tree in trees)


class BoostedKernels(KernelRegression):
    method = "kernel-boosted"

    def __init__(self, *args: Any, trees: list[dict] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.trees = trees or []
        self.names: tuple[str, ...] = SUMMARY

    def fit(self, networks: list[Sample], blocks: list[Sample]) -> None:
        import json

        import xgboost

        super().fit(networks, blocks)
        eager = any(k.split("-", 1)[0] in _EAGER_KINDS for s in networks for k in s.features)
        self.names = EAGER_SUMMARY if eager else SUMMARY
        summed = [KernelRegression.predict(self, s.features) for s in networks]
        rows = np.array(
            [summary(s.features, m, self.names) for s, m in zip(networks, summed, strict=True)]
        )
        target = np.log([s.p50_ms for s in networks]) - np.log(np.maximum(summed, 1e-6))
        booster = xgboost.train(
            {
                "max_depth": TREE_DEPTH,
                "eta": LEARNING_RATE,
                "subsample": 0.8,
                "colsample_bytree": 0.8,
                "base_score": 0.0,
                "nthread": 1,
                "seed": 0,
            },
            xgboost.DMatrix(rows, target),
            TREES,
        )
        self.trees = [_flatten(json.loads(t)) for t in booster.get_dump(dump_format="json")]
        own = booster.predict(xgboost.DMatrix(rows), output_margin=True)
        walked = np.array([_margin(self.trees, row) for row in rows])
        if not np.allclose(walked, own, rtol=1e-4, atol=1e-4):  # what the file will predict
            worst = float(np.max(np.abs(walked - own)))
            raise TangoError(f"the stored trees differ from xgboost's by up to {worst:.3g}")

    def predict(self, features: Features) -> float:
        summed = KernelRegression.predict(self, features)
        row = summary(features, summed, self.names)
        return summed * math.exp(_margin(self.trees, row))

    def parameters(self) -> dict[str, Any]:
        return super().parameters() | {"summary": list(self.names), "trees": self.trees}

    def _load_extra(self, parameters: dict[str, Any]) -> None:
        known = [names for names in _INDEXES if parameters["summary"] == list(names)]
        if not known:
            raise ValueError("its trees read another network summary than this version's")
        self.names = known[0]
        for number, tree in enumerate(parameters["trees"]):
            size = len(tree["feature"])
            if any(len(tree[k]) != size for k in ("threshold", "yes", "no", "value")):
                raise ValueError(f"tree {number}: its arrays differ in length")
            if any(not 0 <= i < size for i in tree["yes"] + tree["no"]) or any(
                f >= len(self.names) for f in tree["feature"]
            ):
                raise ValueError(f"tree {number}: a node points outside the tree or summary")
        self.trees = parameters["trees"]
