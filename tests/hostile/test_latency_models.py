"""A pull request may change a device runner's latency model, which a search on another host
then reads: every hostile file is refused in one line, before a number of it is used, by
`tango validate` and by the search alike; nothing in it is ever run."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from tango_ci import api
from tests.hostile.conftest import tango_here
from tests.latency.helpers import write_latency_model
from tests.pipeline_helpers import make_repo
from tests.supernet.helpers import FOREIGN_TARGET, foreign_runner


class _Boom:
    def __reduce__(self):  # would run a command if anything unpickled the file
        return (os.system, ("touch PWNED",))


def _edit(key: str, value):
    def change(data: dict) -> bytes:
        node = data
        *path, last = key.split("/")
        for part in path:
            node = node[part]
        node[last] = value
        return json.dumps(data).encode()

    return change


HOSTILE = {
    "pickle": lambda data: pickle.dumps(_Boom()),
    "nan": lambda data: (
        json.dumps(data).replace('"overhead_ms": 400.0', '"overhead_ms": NaN').encode()
    ),
    "negative cost": _edit("parameters/overhead_ms", -5.0),
    "huge": lambda data: b'{"pad": "' + b"x" * (5 * 2**20) + b'"}',
    "another runner": _edit("runner", "local-cpu"),
    "unknown method": _edit("method", "python-eval"),
    "key with a path": _edit("parameters/per_mmac_ms", {"../../etc": 1}),
    "twice the same key": lambda data: json.dumps(data)[:-1].encode() + b', "runner": "x"}',
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile-latency") / "repo"
    project = make_repo(root, trials=1, extra_targets=FOREIGN_TARGET)
    foreign_runner(root)
    api.run(project, until="data")
    return root


def _tango(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tango_ci", *args], cwd=root, capture_output=True, text=True
    )


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_latency_model_is_refused_in_one_line(repo: Path, case: str) -> None:
    path = write_latency_model(repo / "runners" / "arm-board.yaml", overhead_ms=400.0)
    path.write_bytes(HOSTILE[case](json.loads(path.read_text())))

    # the pickle goes through real `tango` processes; the other cases run the same commands here
    def tango(*args: str) -> subprocess.CompletedProcess:
        if case == "pickle":  # it could run what it reads: a process of its own
            return _tango(repo, *args)
        done = tango_here(*args, cwd=repo)
        return subprocess.CompletedProcess(args, done.code, done.stdout, done.stderr)

    checked = tango("validate", "runners/arm-board.yaml")
    assert checked.returncode == 1, case
    lines = [line for line in checked.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("runners/arm-board/latency/onnxruntime-fp32")
    searched = tango("search", "projects/tiny")
    assert searched.returncode == 1 and "Traceback" not in searched.stderr, case
    errors = [line for line in searched.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "onnxruntime-fp32.json" in errors[0], case
    assert not (repo / "PWNED").exists()


def test_a_model_that_is_a_link_is_no_model(repo: Path, tmp_path: Path) -> None:
    real = write_latency_model(repo / "runners" / "arm-board.yaml", overhead_ms=400.0)
    elsewhere = tmp_path / "model.json"
    real.replace(elsewhere)
    real.symlink_to(elsewhere)
    searched = _tango(repo, "search", "projects/tiny")
    assert searched.returncode == 1
    [error] = [line for line in searched.stderr.splitlines() if line.startswith("error")]
    assert "no latency model" in error and "tango runner profile runners/arm-board.yaml" in error
    real.unlink()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"id": "../../etc/passwd"}\n{"id": "aaaaaaaaaaaaaaaa"}\n', ":1:1: its id is not"),
        (b'{"id": "' + b"a" * (300 * 1024) + b'"}\n{"id": "aaaaaaaaaaaaaaaa"}\n', ":1:1: "),
        (b'[1, 2]\n{"id": "aaaaaaaaaaaaaaaa"}\n', ":1:1: not a measurement record"),
    ],
)
def test_hostile_measurements_are_refused_with_their_line(
    repo: Path, content: bytes, reason: str
) -> None:
    folder = repo / "runners" / "arm-board" / "latency"
    folder.mkdir(parents=True, exist_ok=True)
    for model in folder.glob("*.json"):
        model.unlink()
    records = folder / "onnxruntime-fp32.measurements.jsonl"
    records.write_bytes(content)
    checked = _tango(repo, "validate", "runners/arm-board.yaml")
    [line] = [x for x in checked.stdout.splitlines() if x.strip()]
    assert checked.returncode == 1 and len(line) < 300
    assert line.startswith("runners/arm-board/latency/onnxruntime-fp32.measurements.jsonl")
    assert reason in line
    records.unlink()


@pytest.mark.parametrize(
    ("inputs", "shape"),
    [(["x"], [1, 3, 8, 8]), (["x", ""], [1, 3, 8, 8]), (["x", "w"], [5]), (["x", "w"], [])],
)
@pytest.mark.parametrize(
    "features", ["onnx", "pytorch-eager-1t", "pytorch-eager-mt", "pytorch-eager"]
)
def test_a_malformed_network_is_refused_or_read_never_a_traceback(
    tmp_path: Path, inputs: list[str], shape: list[int], features: str
) -> None:
    """A convolution without weights, or with a 1-D or empty shape (a network an artifact can
    carry): one FeatureError line, or kernels read with zero where a size is unknown."""
    import onnx
    from onnx import TensorProto, helper

    from tango_ci.latency import FeatureError, kernels

    weights = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], [0.0] * 108)
    graph = helper.make_graph(
        [helper.make_node("Conv", inputs, ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        initializer=[weights],
    )
    path = tmp_path / "net.onnx"
    onnx.save(helper.make_model(graph), str(path))
    try:
        [kernel] = kernels(path, features=features)
    except FeatureError as refused:
        assert not all(inputs) or len(inputs) < 2
        assert "\n" not in str(refused)
        assert "a conv node with 1 inputs and 1 outputs is not a network" in str(refused)
    else:
        assert all(inputs) and len(inputs) == 2 and kernel.kind == "conv"


@pytest.mark.parametrize(
    ("op", "attribute", "value"),
    [
        ("Conv", "dilations", 2.0),
        ("Conv", "strides", ["a", "b"]),
        ("Conv", "group", [1, 2]),
        ("MaxPool", "kernel_shape", 3.5),
    ],
)
@pytest.mark.parametrize("features", ["onnx", "pytorch-eager-1t", "pytorch-eager"])
def test_an_attribute_of_another_type_is_one_line_never_a_traceback(
    tmp_path: Path, op: str, attribute: str, value: object, features: str
) -> None:
    import onnx
    from onnx import TensorProto, helper

    from tango_ci.latency import FeatureError, kernels

    weights = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], [0.0] * 108)
    inputs = ["x", "w"] if op == "Conv" else ["x"]
    node = helper.make_node(op, inputs, ["y"], **{attribute: value})
    if op == "MaxPool" and attribute != "kernel_shape":
        node.attribute.append(helper.make_attribute("kernel_shape", [3, 3]))
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[weights],
    )
    path = tmp_path / "net.onnx"
    onnx.save(helper.make_model(graph), str(path))
    if attribute == "dilations" and features != "pytorch-eager-1t":
        assert kernels(path, features=features)  # only PyTorch's oneDNN choice reads it
        return
    with pytest.raises(FeatureError, match=f"{attribute} is not whole numbers") as refused:
        kernels(path, features=features)
    assert "\n" not in str(refused.value)
