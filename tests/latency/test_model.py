"""A latency model as a file: written and read back to the same predictions by every method;
a hostile or broken file refused in one line naming the file and the field."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tango_ci.latency import (
    METHODS,
    LatencyModel,
    LatencyModelError,
    load_model,
    model_problem,
    write_model,
)
from tango_ci.latency._flops import FlopsLinear
from tango_ci.latency._kernels import KernelRegression
from tango_ci.latency.features import FEATURES
from tango_ci.latency.model import MAX_MODEL_BYTES, fit
from tests.conftest import REPO
from tests.latency.helpers import TAILS, latency_model
from tests.latency.networks import expected_macs, export_tiny
from tests.latency.test_methods import blocks, networks

UNSEEN = {"conv-k7-s1": [1.0, 3.0, 0.5], "softmax": [1.0, 0.0, 0.2]}
FINER = {"conv-k3-s1-c64-h8": [2.0, 4.0, 1.0], "add": [3.0, 0.0, 2.0]}


def fitted(method: str) -> LatencyModel:
    predictor = fit(method, networks(20), blocks())
    return LatencyModel(
        "local-cpu", "onnxruntime", "fp32", 2, predictor, dict(TAILS), {"host": {"cpu": "x"}}
    )


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_written_model_reads_back_to_the_same_predictions(method: str, tmp_path: Path) -> None:
    model = fitted(method)
    path = tmp_path / "onnxruntime-fp32.json"
    write_model(path, model)
    loaded = load_model(path)
    assert loaded.method == method and type(loaded.predictor) is METHODS[method]
    assert loaded.to_json() == model.to_json()
    for features in [s.features for s in networks(5, seed=7)] + [UNSEEN, FINER]:
        before, after = model.predict_features(features), loaded.predict_features(features)
        assert after["p50_ms"] == before["p50_ms"]  # exactly: the JSON keeps every bit
        assert after["unseen_kernels"] == before["unseen_kernels"]
        assert after["p99_ms"] == before["p50_ms"] * TAILS["p99"]
    assert loaded.source.endswith("onnxruntime-fp32.json")
    assert not list(tmp_path.glob("*.partial"))


def test_the_tail_percentiles_follow_the_ratios_and_p50_stays_positive() -> None:
    model = LatencyModel("r", "onnxruntime", "fp32", 1, FlopsLinear(0.5, 1.0), dict(TAILS))
    found = model.predict_features({"conv-k3-s1": [1.0, 4.0, 0.0]})
    assert found["p50_ms"] == pytest.approx(3.0)
    assert (found["p90_ms"], found["p95_ms"], found["p99_ms"]) == pytest.approx((3.75, 4.5, 6.0))
    assert found["method"] == "flops-linear" and found["unseen_kernels"] == []
    idle = LatencyModel("r", "onnxruntime", "fp32", 1, FlopsLinear(0.0, 0.0), dict(TAILS))
    assert idle.predict_features({})["p50_ms"] == pytest.approx(1e-4)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_the_helper_model_predicts_an_onnx_network_by_hand(method: str, tmp_path: Path) -> None:
    onnx_path = export_tiny(tmp_path / "tiny.onnx")
    model = latency_model("local-cpu", overhead_ms=2.0, per_mmac_ms=10.0, method=method)
    mmacs = sum(expected_macs().values()) / 1e6
    for batch in (1, 2):
        found = model.predict(onnx_path, batch=batch)
        assert found["p50_ms"] == pytest.approx(2.0 + 10.0 * batch * mmacs)
        assert found["p95_ms"] == pytest.approx(found["p50_ms"] * TAILS["p95"])


def test_the_schema_lists_the_methods_and_features_of_the_tables() -> None:
    schema = json.loads((REPO / "schemas" / "latency-model.schema.json").read_text())
    assert sorted(schema["properties"]["method"]["enum"]) == sorted(METHODS)
    parameters = schema["properties"]["parameters"]["properties"]
    assert tuple(parameters["features"]["const"]) == FEATURES


def test_a_model_that_breaks_its_schema_is_not_written(tmp_path: Path) -> None:
    model = LatencyModel("Not A Slug", "onnxruntime", "fp32", 1, FlopsLinear(1.0, 1.0), TAILS)
    with pytest.raises(AssertionError, match="runner"):
        write_model(tmp_path / "m.json", model)
    assert not (tmp_path / "m.json").exists()


def test_a_nan_coefficient_is_not_written(tmp_path: Path) -> None:
    model = LatencyModel("r", "onnxruntime", "fp32", 1, FlopsLinear(float("nan"), 1.0), TAILS)
    assert model_problem(model.to_json()) is not None
    with pytest.raises(AssertionError):
        write_model(tmp_path / "m.json", model)


# ------------------------------------------------------------------------------ hostile files
def valid() -> dict[str, Any]:
    return fitted("kernel-table").to_json()


def _set(path: str, value: Any):
    """A change of ``valid()``: the field at ``path`` (``a/b/c``) set to ``value``."""

    def change(data: dict) -> None:
        *parents, last = path.split("/")
        for part in parents:
            data = data[part]
        data[last] = value

    return change


def _drop(path: str):
    def change(data: dict) -> None:
        *parents, last = path.split("/")
        for part in parents:
            data = data[part]
        del data[last]

    return change


def _rename_key(old: str, new: str):
    def change(data: dict) -> None:
        table = data["parameters"]["coefficients"]
        table[new] = table.pop(old)

    return change


HOSTILE = {
    "nan-cost": (_set("parameters/coefficients/conv-k3-s1", [0.1, float("nan"), 0.1]), "NaN"),
    "infinite-cost": (_set("parameters/overhead_ms", float("inf")), "Infinity"),
    "negative-cost": (
        _set("parameters/coefficients/conv-k3-s1", [0.1, -0.5, 0.1]),
        "at parameters/coefficients/conv-k3-s1/1: -0.5 is less than the minimum of 0",
    ),
    "negative-overhead": (_set("parameters/overhead_ms", -1.0), "at parameters/overhead_ms"),
    "short-cost-row": (_set("parameters/coefficients/add", [0.1, 0.2]), "coefficients/add"),
    "unknown-method": (_set("method", "magic-oracle"), "at method: 'magic-oracle'"),
    "extra-top-level-key": (_set("extra", 1), "'extra' was unexpected"),
    "extra-parameter": (_set("parameters/code", "import os"), "'code' was unexpected"),
    "no-calibration": (_drop("parameters/calibration"), "'calibration' is a required property"),
    "no-depth": (_drop("parameters/depth"), "'depth' is a required property"),
    "no-tails": (_drop("tails"), "'tails' is a required property"),
    "key-climbs-up": (_rename_key("add", "../x"), "at parameters/coefficients: '../x'"),
    "key-upper-case": (_rename_key("add", "Add"), "at parameters/coefficients: 'Add'"),
    "column-climbs-up": (_set("parameters/columns/add", "../x"), "at parameters/columns/add"),
    "runner-path": (_set("runner", "../../etc"), "at runner: '../../etc'"),
    "engine-upper-case": (_set("engine", "ONNX"), "at engine"),
    "tail-below-one": (_set("tails/p90", 0.5), "at tails/p90"),
    "zero-threads": (_set("threads", 0), "at threads"),
    "other-format": (_set("format", "pickle"), "at format"),
    "newline-in-key": (_set("two\nlines", 1), "'two\\nlines' was unexpected"),
}


def _refusal(path: Path) -> str:
    with pytest.raises(LatencyModelError) as refused:
        load_model(path)
    message = str(refused.value)
    assert "\n" not in message and "\r" not in message, message
    assert message.startswith(f"{path.name}: not a usable latency model: "), message
    return message


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_model_is_refused_in_one_line_naming_the_field(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    change, expected = HOSTILE[case]
    data = valid()
    change(data)
    path = tmp_path / "onnxruntime-fp32.json"
    path.write_text(json.dumps(data))  # NaN and Infinity as Python writes them
    assert expected in _refusal(path)


def test_a_nan_refusal_says_where_the_nan_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = valid()
    data["parameters"]["coefficients"]["add"] = [0.1, float("nan"), 0.1]
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data, indent=2))
    [line] = [n for n, text in enumerate(path.read_text().splitlines(), 1) if "NaN" in text]
    message = _refusal(path)
    assert f"line {line}" in message or "parameters/coefficients/add" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{", "not valid JSON"),
        (b"[1, 2, 3]", "at the top level: [1, 2, 3] is not of type 'object'"),
        (b'"a model"', "at the top level"),
        (b"", "not valid JSON"),
        (b'{"runner": "\xff"}', "not UTF-8"),
    ],
)
def test_a_file_that_is_not_a_json_object_is_refused(
    content: bytes, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model.json"
    path.write_bytes(content)
    assert expected in _refusal(path)


def test_a_file_over_the_size_limit_is_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = json.dumps(valid())
    path = tmp_path / "model.json"
    path.write_text(text[:-1] + " " * (MAX_MODEL_BYTES - len(text) + 1) + "}")
    assert path.stat().st_size == MAX_MODEL_BYTES + 1
    assert f"more than the {MAX_MODEL_BYTES}" in _refusal(path)
    path.write_text(text[:-1] + " " * (MAX_MODEL_BYTES - len(text)) + "}")
    assert load_model(path).method == "kernel-table"  # the limit itself is allowed


def test_a_symlink_or_folder_or_missing_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "real.json"
    write_model(target, fitted("flops-linear"))
    link = tmp_path / "link.json"
    os.symlink(target, link)
    assert "a symbolic link" in _refusal(link)
    (tmp_path / "folder.json").mkdir()
    assert "not a regular file" in _refusal(tmp_path / "folder.json")
    assert "missing" in _refusal(tmp_path / "absent.json")


def test_a_duplicated_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = json.dumps(valid())
    path = tmp_path / "model.json"
    path.write_text('{"runner": "gpu-server", ' + text[1:])
    _refusal(path)


def test_cost_rows_are_read_in_the_order_the_file_declares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    model = LatencyModel(
        "r", "onnxruntime", "fp32", 1, KernelRegression({"add": [1.0, 2.0, 3.0]}), TAILS
    )
    data = model.to_json()
    data["parameters"]["features"] = ["melems", "mmacs", "count"]
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    try:
        loaded = load_model(path)
    except LatencyModelError:
        return  # refusing an order it cannot read is as good
    # 1 call and 10 M elements: melems 1 x 10 + count 3 x 1
    assert loaded.predictor.predict({"add": [1.0, 0.0, 10.0]}) == pytest.approx(13.0)
