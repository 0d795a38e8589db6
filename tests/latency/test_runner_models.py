"""A runner's latency models in the repository: found by runner, engine and precision, refused
when made for another, and checked by `tango validate` with the runner file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tango_ci import api
from tango_ci.cli import app
from tango_ci.exceptions import TangoError
from tango_ci.latency import LatencyModelError
from tango_ci.latency.records import append_record
from tango_ci.runners.latency_source import latency_model, latency_model_path
from tango_ci.spec import RunnerSpec, load_runner
from tests.conftest import REPO
from tests.latency.helpers import write_latency_model

MODEL = Path("runners/local-cpu/latency/onnxruntime-fp32.json")


@pytest.fixture
def runner_file(tmp_path: Path) -> Path:
    path = tmp_path / "runners" / "local-cpu.yaml"
    path.parent.mkdir()
    shutil.copy(REPO / "runners" / "local-cpu.yaml", path)
    return path


@pytest.fixture
def runner(runner_file: Path) -> RunnerSpec:
    return load_runner(runner_file)


def _rewrite(path: Path, **fields: str) -> None:
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data, indent=2))


def test_the_model_of_the_runner_engine_and_precision_is_found(
    runner: RunnerSpec, runner_file: Path, tmp_path: Path
) -> None:
    path = write_latency_model(runner_file, per_mmac_ms=2.0, method="kernel-regression")
    assert path == tmp_path / MODEL
    assert latency_model_path(runner, "onnxruntime", "fp32") == path
    assert latency_model_path(runner, "onnxruntime", "int8") is None
    model = latency_model(runner, "onnxruntime", "fp32")
    assert (model.runner, model.engine, model.precision) == ("local-cpu", "onnxruntime", "fp32")
    assert model.method == "kernel-regression"
    assert model.predict_features({"conv-k3-s1": [1.0, 3.0, 0.0]})["p50_ms"] == pytest.approx(7.0)


@pytest.mark.parametrize(
    ("field", "value", "made_for"),
    [
        ("runner", "raspberry-pi-5", "raspberry-pi-5 onnxruntime fp32"),
        ("engine", "tvm", "local-cpu tvm fp32"),
        ("precision", "int8", "local-cpu onnxruntime int8"),
    ],
)
def test_a_model_made_for_another_build_is_refused(
    field: str, value: str, made_for: str, runner: RunnerSpec, runner_file: Path
) -> None:
    path = write_latency_model(runner_file)
    _rewrite(path, **{field: value})
    with pytest.raises(LatencyModelError) as refused:
        latency_model(runner, "onnxruntime", "fp32")
    message = str(refused.value)
    assert "\n" not in message and "onnxruntime-fp32.json" in message
    assert f"made for runner {made_for}, not local-cpu onnxruntime fp32" in message


def test_a_changed_model_file_is_read_again(runner: RunnerSpec, runner_file: Path) -> None:
    path = write_latency_model(runner_file)
    assert latency_model(runner, "onnxruntime", "fp32").runner == "local-cpu"
    _rewrite(path, runner="gpu-server")  # another size: the cache sees a new file
    with pytest.raises(LatencyModelError, match="made for runner gpu-server"):
        latency_model(runner, "onnxruntime", "fp32")


def test_a_missing_or_linked_model_is_no_model(
    runner: RunnerSpec, runner_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(TangoError) as refused:
        latency_model(runner, "onnxruntime", "fp32")
    message = str(refused.value)
    assert "\n" not in message
    assert "runner local-cpu has no latency model for onnxruntime fp32" in message
    assert "tango runner profile runners/local-cpu.yaml" in message
    elsewhere = write_latency_model(tmp_path / "other" / "local-cpu.yaml")
    link = tmp_path / MODEL
    link.parent.mkdir(parents=True)
    os.symlink(elsewhere, link)
    assert latency_model_path(runner, "onnxruntime", "fp32") is None
    with pytest.raises(TangoError, match="has no latency model"):
        latency_model(runner, "onnxruntime", "fp32")


# --------------------------------------------------------------------------- tango validate
def _validate(root: Path) -> list[str]:
    return [p.format() for p in api.validate([root / "runners" / "local-cpu.yaml"], root)]


def test_validate_accepts_a_valid_model_of_every_method(spec_repo: Path) -> None:
    runner_yaml = spec_repo / "runners" / "local-cpu.yaml"
    write_latency_model(runner_yaml, method="kernel-table")
    write_latency_model(runner_yaml, "tvm", "fp32", method="kernel-regression")
    write_latency_model(runner_yaml, "onnxruntime", "int8", method="flops-linear")
    records = spec_repo / "runners/local-cpu/latency/onnxruntime-fp32.measurements.jsonl"
    append_record(records, {"id": "0123abcd0123abcd", "p50_ms": 1.0})
    records.write_bytes(records.read_bytes() + b'{"id": "4567')  # a kill's cut line
    assert _validate(spec_repo) == []
    assert api.validate([], spec_repo) == []  # the whole repository too


def test_validate_names_a_corrupt_model(spec_repo: Path) -> None:
    path = write_latency_model(spec_repo / "runners" / "local-cpu.yaml")
    data = json.loads(path.read_text())
    data["parameters"]["per_mmac_ms"] = -1.0
    path.write_text(json.dumps(data))
    [line] = _validate(spec_repo)
    assert line.startswith(f"{MODEL}: at parameters/per_mmac_ms: ")
    path.write_text("{not json")
    [line] = _validate(spec_repo)
    assert line.startswith(f"{MODEL}: ") and "not valid JSON" in line


def test_validate_names_a_model_of_another_runner(spec_repo: Path) -> None:
    path = write_latency_model(spec_repo / "runners" / "local-cpu.yaml")
    _rewrite(path, runner="raspberry-pi-5")
    [line] = _validate(spec_repo)
    assert line.startswith(f"{MODEL}: runner: made for runner raspberry-pi-5 onnxruntime fp32")
    assert "belongs in runners/local-cpu/latency/onnxruntime-fp32.json" in line


def test_validate_names_a_model_under_another_file_name(spec_repo: Path) -> None:
    path = write_latency_model(spec_repo / "runners" / "local-cpu.yaml")
    path.rename(path.with_name("tvm-fp32.json"))
    [line] = _validate(spec_repo)
    assert line.startswith("runners/local-cpu/latency/tvm-fp32.json: runner: ")
    assert "belongs in runners/local-cpu/latency/onnxruntime-fp32.json" in line


def _corrupt_measurements(root: Path) -> Path:
    records = root / "runners/local-cpu/latency/onnxruntime-fp32.measurements.jsonl"
    records.parent.mkdir(parents=True)
    records.write_text('{"id": "aaaaaaaaaaaaaaaa"}\n{"id": \n{"id": "bbbbbbbbbbbbbbbb"}\n')
    return records.relative_to(root)


def test_validate_names_the_line_of_corrupt_measurements(spec_repo: Path) -> None:
    records = _corrupt_measurements(spec_repo)
    [line] = _validate(spec_repo)
    assert line.startswith(f"{records}:2:1: Expecting value")


def test_a_measurements_problem_names_its_file_once(spec_repo: Path) -> None:
    records = _corrupt_measurements(spec_repo)
    [problem] = api.validate([spec_repo / "runners" / "local-cpu.yaml"], spec_repo)
    assert problem.format().count(str(records)) == 1


def test_the_cli_prints_one_line_per_bad_model_and_exits_one(spec_repo: Path) -> None:
    path = write_latency_model(spec_repo / "runners" / "local-cpu.yaml")
    ok = CliRunner().invoke(app, ["validate", "runners/local-cpu.yaml"])
    assert ok.exit_code == 0 and ok.stdout == ""
    _rewrite(path, runner="gpu-server")
    path.with_name("tvm-fp32.json").write_text("[]")
    bad = CliRunner().invoke(app, ["validate", "runners/local-cpu.yaml"])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    lines = bad.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{MODEL}: runner: made for runner gpu-server")
    assert lines[1].startswith("runners/local-cpu/latency/tvm-fp32.json: at the top level: ")
