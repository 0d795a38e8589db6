"""The whole classification pipeline on a tiny generated dataset: every file it writes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tango_ci import api
from tango_ci.exceptions import StageInputError
from tango_ci.pipeline import RUNNER_STAGES, ProjectChanged, RunnerChanged
from tango_ci.rundir import STAGES, file_sha256, read_json
from tests.latency.helpers import write_latency_model
from tests.pipeline_helpers import make_repo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """One full run of the tiny project: (project folder, run folder)."""
    project = make_repo(tmp_path_factory.mktemp("pipeline") / "repo")
    # local-cpu has a latency model for onnxruntime fp32 (not for int8): bench compares it
    write_latency_model(project.parent.parent / "runners" / "local-cpu.yaml", overhead_ms=0.5)
    run = api.run(project, bench_seconds=1)
    return project, run.root


def _manifest(run: Path, stage: str) -> dict:
    return read_json(run / stage / "manifest.json")


def test_every_stage_wrote_a_complete_manifest(finished) -> None:
    project, run = finished
    assert (run.parent / "latest").resolve() == run
    for stage in STAGES:
        manifest = _manifest(run, stage)
        assert manifest["stage"] == stage and manifest["status"] == "complete"
        assert manifest["run"] == run.name
        assert manifest["started"] <= manifest["ended"] and manifest["duration_s"] >= 0
        assert manifest["tools"]["torch"] == "2.14.1"
        for entry in manifest["outputs"].values():  # every output exists with its hash
            assert file_sha256(run / entry["path"]) == entry["sha256"]
    spec = read_json(run / "spec.json")
    assert spec["sha256"] == file_sha256(project / "project.yaml")


def test_data_stage(finished) -> None:
    _, run = finished
    summary = _manifest(run, "data")["summary"]
    assert summary["classes"] == ["circle", "square", "triangle"]
    # 12 a class, split by each image's content hash: about 20% for validation, 15% of the
    # rest for the test split, and every class in every split
    counts = summary["images"]
    assert sum(counts.values()) == 36 and min(counts.values()) >= 3
    assert re.fullmatch(r"[0-9a-f]{64}", summary["fingerprint"])
    with np.load(run / "data" / "val.npz") as val:
        assert val["images"].shape == (counts["val"], 32, 32, 3)
        assert val["images"].dtype == np.uint8
        assert set(val["labels"].tolist()) == {0, 1, 2}


def test_search_stage(finished) -> None:
    _, run = finished
    trials = read_json(run / "search" / "trials.json")
    assert len(trials) == 2
    for trial in trials:
        assert trial["params"]["family"] == "resnet" and trial["params"]["level"] == "xs"
        assert trial["feasible"] is True and trial["epochs_trained"] == 1
        assert set(trial["latency_ms"]) == {"cpu-fp32", "cpu-int8"}
    pareto = read_json(run / "search" / "pareto.json")
    assert pareto and {t["number"] for t in pareto} <= {t["number"] for t in trials}
    best = read_json(run / "search" / "best.json")
    assert best["score"] == max(t["score"] for t in trials) and best["score_name"] == "accuracy"
    assert (run / "search" / "study.db").exists()


def test_train_and_export_stages(finished) -> None:
    _, run = finished
    history = read_json(run / "train" / "history.json")
    assert [h["epoch"] for h in history] == [0, 1]
    metrics = read_json(run / "train" / "metrics.json")
    assert 0 <= metrics["val_accuracy"] <= 1
    assert metrics["val_accuracy"] == max(h["val_accuracy"] for h in history)
    device = _manifest(run, "train")["summary"]["device"]  # where it trained, and how
    assert device["requested"] == "auto" and device["precision"] in ("fp32", "bf16", "fp16")
    assert device["kind"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert _manifest(run, "search")["summary"]["device"] == device
    export = _manifest(run, "export")
    assert export["inputs"]["weights"]["sha256"] == file_sha256(run / "train" / "best.pt")
    parity = read_json(run / "export" / "parity.json")
    assert parity["max_abs"] <= parity["tolerance"] and parity["top1_agreement"] == 1.0
    assert export["summary"]["opset"] == 17


def test_compile_stage(finished) -> None:
    _, run = finished
    fp32 = read_json(run / "compile" / "cpu-fp32" / "artifact.json")
    int8 = read_json(run / "compile" / "cpu-int8" / "artifact.json")
    assert fp32["precision"] == "fp32" and "quantization" not in fp32
    assert int8["quantization"]["format"] == "QDQ"
    assert int8["quantization"]["calibration_images"] > 0
    import onnx

    ops = {
        n.op_type for n in onnx.load(str(run / "compile" / "cpu-int8" / "model.onnx")).graph.node
    }
    assert {"QuantizeLinear", "DequantizeLinear"} & ops or "QLinearConv" in ops


def test_bench_stage(finished) -> None:
    _, run = finished
    tested = _manifest(run, "data")["summary"]["images"]["test"]
    references = set()  # PyTorch fp32 on the same test images, for every target
    for target in ("cpu-fp32", "cpu-int8"):
        metrics = read_json(run / "bench" / target / "metrics.json")
        latency = metrics["latency"]
        assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"]
        assert latency["repeats"] >= 30 and latency["cv"] >= 0
        assert latency["throughput_per_s"] == pytest.approx(1000 / latency["p50_ms"])
        assert 0 < metrics["memory"]["rss_before_load_mb"] <= metrics["memory"]["peak_rss_mb"]
        accuracy, quality = metrics["task_metrics"], metrics["quality"]
        assert np.asarray(accuracy["confusion"]).sum() == tested
        assert accuracy["accuracy"] == pytest.approx(np.trace(accuracy["confusion"]) / tested)
        assert (quality["name"], quality["label"]) == ("accuracy", "accuracy")
        assert quality["value"] == accuracy["accuracy"]
        assert quality["reference"] == metrics["reference_metrics"]["accuracy"]
        assert quality["drop"] == pytest.approx(quality["reference"] - accuracy["accuracy"])
        references.add(quality["reference"])
        assert len(read_json(run / "bench" / target / "latency_samples.json")) == latency["repeats"]
    assert len(references) == 1 and 0 <= references.pop() <= 1
    fp32 = read_json(run / "bench" / "cpu-fp32" / "metrics.json")
    assert fp32["quality"]["drop"] == pytest.approx(0.0, abs=1e-9)  # same network, fp32


def test_bench_compares_the_runners_latency_model_with_the_measurement(finished) -> None:
    from tango_ci.gitops.runfolder import collect
    from tango_ci.latency import load_model
    from tango_ci.rundir import RunDir

    project, run = finished
    root = project.parent.parent
    metrics = read_json(run / "bench" / "cpu-fp32" / "metrics.json")
    model = load_model(root / "runners" / "local-cpu" / "latency" / "onnxruntime-fp32.json")
    predicted = model.predict(run / "export" / "model.onnx", batch=1, size=32)["p50_ms"]
    prediction = metrics["prediction"]
    assert prediction["predicted_p50_ms"] == pytest.approx(predicted)
    measured = metrics["latency"]["p50_ms"]
    assert prediction["measured_p50_ms"] == measured
    assert metrics["prediction_error"] == pytest.approx((predicted - measured) / measured)
    assert "prediction" not in read_json(run / "bench" / "cpu-int8" / "metrics.json")
    report = (run / "report" / "report.md").read_text()
    assert f"prediction error {metrics['prediction_error']:+.1%}" in report
    # the registry record of a promoted version carries it (drift over releases)
    targets = collect(RunDir(run))["targets"]
    assert targets["cpu-fp32"]["metrics"]["latency_prediction_error"] == pytest.approx(
        metrics["prediction_error"]
    )
    assert targets["cpu-int8"]["metrics"]["latency_prediction_error"] is None
    partial = run.parent / f".{run.name}.partial"  # what a fork killed while copying leaves
    shutil.copytree(run, partial, symlinks=True)
    try:
        summary = api.latency_report("local-cpu", repo_root=root)
    finally:
        shutil.rmtree(partial)
    [row] = summary["summary"]  # the half-made copy is not counted again
    assert (row["engine"], row["precision"], row["count"]) == ("onnxruntime", "fp32", 1)
    assert row["latest_error"] == pytest.approx(metrics["prediction_error"])
    assert [m["method"] for m in summary["models"]] == ["flops-linear"]
    shown = subprocess.run(
        [sys.executable, "-m", "tango_ci", "runner", "latency-report", "local-cpu"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    assert f"{metrics['prediction_error']:+.1%}" in shown.stderr and "flops-linear" in shown.stderr


def test_every_hand_off_file_meets_its_schema(finished, tmp_path) -> None:
    from tango_ci.rundir import check_run_folder

    _, run = finished
    assert check_run_folder(run) == []
    assert len(list(run.glob("compile/*/artifact.json"))) == 2
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    broken = read_json(copy / "bench" / "cpu-fp32" / "metrics.json")
    del broken["quality"]["reference"]
    (copy / "bench" / "cpu-fp32" / "metrics.json").write_text(json.dumps(broken))
    [problem] = check_run_folder(copy)
    assert problem.startswith(
        "bench/cpu-fp32/metrics.json: at quality: 'reference' is a required property"
    )


def test_gate_and_report(finished) -> None:
    _, run = finished
    decision = read_json(run / "gate" / "decision.json")
    checks = {c["check"]: c for c in decision["targets"]["cpu-fp32"]["checks"]}
    assert checks["latency p95"]["limit"] == 1000 and checks["latency p95"]["status"] == "pass"
    assert checks["peak memory"]["status"] == "no limit"
    assert checks["accuracy vs production on the test split"]["status"] == "no production model"
    assert checks["accuracy on the test split"]["status"] == "no limit"
    assert decision["passed"] is all(t["passed"] for t in decision["targets"].values())
    report = (run / "report" / "report.md").read_text()
    assert report.splitlines()[0].startswith("## TANGO-CI report: tiny")
    assert "- **cpu-fp32** gets resnet-xs" in report and "- **cpu-int8** gets" in report
    assert "tango run projects/tiny" in report
    tested = _manifest(run, "data")["summary"]["images"]["test"]
    assert f"on the test split, {tested} images, unseen by search and training" in report
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):
        assert (run / "report" / image).stat().st_size > 1000, image
    data = read_json(run / "report" / "report.json")
    assert data["passed"] == decision["passed"] and data["run"] == run.name


def test_rerunning_a_finished_stage_forks_a_new_run(finished) -> None:
    project, run = finished
    before = (run / "gate" / "decision.json").read_bytes()
    forked = api.run(project, from_stage="gate", until="gate")
    assert forked.root != run
    assert (run / "gate" / "decision.json").read_bytes() == before  # old result kept
    assert (forked.root.parent / "latest").resolve() == forked.root
    assert read_json(forked.root / "forked-from.json") == {"run": run.name}
    assert (forked.root / "bench" / "cpu-fp32" / "metrics.json").exists()  # inputs copied
    assert not (forked.root / "report").exists()


def test_training_again_in_a_new_process_gives_the_same_weights(finished) -> None:
    """Same seeds, same weights: torch seeds itself randomly per process unless told."""
    import subprocess
    import sys

    project, run = finished
    subprocess.run(
        [sys.executable, "-m", "tango_ci", "train", str(project), "--run", run.name],
        check=True,
        capture_output=True,
        cwd=project.parent.parent,
    )
    again = (project.parent.parent / "runs" / "tiny" / "latest").resolve()
    assert again != run
    assert file_sha256(again / "train" / "best.pt") == file_sha256(run / "train" / "best.pt")


def test_a_stage_without_its_inputs_names_the_stage_to_run(finished) -> None:
    project, _ = finished
    api.run(project, until="data")
    with pytest.raises(StageInputError) as info:
        api.run(project, from_stage="train", until="train")
    found = re.fullmatch(
        r"stage 'train' needs the chosen candidate from the search stage "
        r"\(not found in .*\); run `tango search (\S+)` first, or `tango run \1 --resume` "
        r"for every stage still missing",
        info.value.message,
    )
    assert found and Path(found.group(1)).resolve() == project.resolve()


def test_a_changed_project_file_refuses_to_continue_a_run(finished) -> None:
    project, _ = finished
    path = project / "project.yaml"
    original = path.read_text()
    try:
        path.write_text(original + "description: changed\n")
        with pytest.raises(ProjectChanged, match=r"changed since run .* start a new run"):
            api.run(project, from_stage="gate", until="gate")
    finally:
        path.write_text(original)


@pytest.mark.parametrize("changed", ["runner", "latency model"])
def test_a_changed_runner_file_refuses_to_continue_a_run(finished, changed) -> None:
    """Runner files (threads, engines) and latency models were not part of a run: a run
    continued after they changed mixed two set-ups. The stages that used them record them."""
    project, run = finished
    root = project.parent.parent
    runner = root / "runners" / "local-cpu.yaml"
    model = root / "runners" / "local-cpu" / "latency" / "onnxruntime-fp32.json"
    files = {"runners/local-cpu.yaml", model.relative_to(root).as_posix()}
    for stage in STAGES:
        recorded = read_json(run / stage / "manifest.json").get("runner_files", {})
        assert set(recorded) == (files if stage in RUNNER_STAGES else set()), stage
    path = runner if changed == "runner" else model
    original = path.read_bytes()
    try:
        if changed == "runner":
            runner.write_text(original.decode() + "# threads were changed here\n")
        else:
            write_latency_model(runner, overhead_ms=1.0)
        shown = path.relative_to(root).as_posix()
        # gate again: a new run holding copies of the stages before it, which used the old one
        message = rf"^{shown} changed since the search stage of run \S+ used it; start a new run"
        with pytest.raises(RunnerChanged, match=message):
            api.run(project, from_stage="gate", until="gate", run_id=run.name)
    finally:
        path.write_bytes(original)
    api.run(project, from_stage="gate", until="gate", run_id=run.name)  # as it was: goes on


def test_training_can_start_from_local_pretrained_weights(tmp_path) -> None:
    import torch

    from tango_ci.models import build_model
    from tango_ci.train.stage import load_pretrained

    source = build_model("resnet", "xs", 10)  # another class count: the head must stay new
    torch.save(source.state_dict(), tmp_path / "weights.pt")
    target = build_model("resnet", "xs", 3)
    head_before = target.fc.weight.clone()
    loaded = load_pretrained(target, tmp_path / "weights.pt")
    assert loaded == len(source.state_dict()) - 2  # all but fc.weight and fc.bias
    assert torch.equal(target.conv1.weight, source.conv1.weight)
    assert torch.equal(target.fc.weight, head_before)
    other = build_model("densenet", "xs", 3)
    from tango_ci.exceptions import TangoError

    with pytest.raises(TangoError, match="no tensor matches the chosen network"):
        load_pretrained(build_model("resnet", "xs", 3), _save(other, tmp_path / "d.pt"))


def _save(model, path):
    import torch

    torch.save(model.state_dict(), path)
    return path
