"""engine: auto measures every engine and precision the runner offers and picks the fastest
within the accuracy-drop limit; the report shows the whole table."""

from __future__ import annotations

from pathlib import Path

import pytest

from tango_ci import api
from tango_ci.rundir import read_json
from tango_ci.stages.bench import choose
from tests.pipeline_helpers import make_repo


def _row(engine, precision, p95, drop):
    return {
        "engine": engine,
        "precision": precision,
        "latency": {"p95_ms": p95},
        "quality": {"drop": drop, "label": "accuracy"},
    }


def test_choose_fastest_within_the_drop_limit() -> None:
    rows = [
        _row("onnxruntime", "fp32", 2.0, 0.0),
        _row("onnxruntime", "int8", 0.5, 0.05),
        _row("tvm", "fp32", 1.5, 0.0),
    ]
    assert choose(rows, "p95", 0.02) == (
        2,
        "fastest p95 latency among candidates with "
        "accuracy drop <= 0.02; excluded for accuracy: "
        "onnxruntime int8",
    )
    assert choose(rows, "p95", 0.1)[0] == 1
    assert choose([_row("a", "int8", 1, 0.5)], "p95", 0.1) == (
        None,
        "no candidate keeps the accuracy drop within 0.1",
    )


AUTO_TARGET = """\
  - name: cpu-auto
    runner: local-cpu
    engine: auto
    constraints: {max_accuracy_drop: 1.0}
"""


@pytest.mark.slow
def test_auto_target_end_to_end(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "repo", trials=1, extra_targets=AUTO_TARGET)
    run = api.run(project, bench_seconds=1).root
    candidates = read_json(run / "compile" / "cpu-auto" / "candidates.json")
    assert candidates == ["onnxruntime-fp32", "onnxruntime-int8", "tvm-fp32", "pytorch-fp32"]
    metrics = read_json(run / "bench" / "cpu-auto" / "metrics.json")
    rows = metrics["auto"]["candidates"]
    assert [f"{r['engine']}-{r['precision']}" for r in rows] == candidates
    fastest = min(rows, key=lambda r: r["p95_ms"])  # every drop is within 1.0
    assert metrics["auto"]["chosen"] == f"{fastest['engine']}-{fastest['precision']}"
    assert (metrics["engine"], metrics["precision"]) == (fastest["engine"], fastest["precision"])
    decision = read_json(run / "gate" / "decision.json")["targets"]["cpu-auto"]
    assert decision["engine"] == fastest["engine"] and decision["auto"] is True
    report = (run / "report" / "report.md").read_text()
    assert f"`engine: auto` chose **{metrics['auto']['chosen']}**" in report
    assert "| candidate | p50 ms |" in report and "TVM ran untuned" in report
    # PyTorch's modes are timed here, torch.compile among them where a C++ compiler is
    from tango_ci.compile._pytorch import compile_refusal

    torch_built = read_json(run / "compile" / "cpu-auto" / "pytorch-fp32" / "artifact.json")
    timed = torch_built["modes_timed_ms"]
    assert torch_built["mode"] == min(timed, key=timed.get)
    skipped = torch_built.get("modes_skipped", {})
    assert set(timed) | set(skipped) == {"eager", "torchscript", "compile"}
    if compile_refusal() is None and "compile" not in skipped:
        ready = torch_built["modes_ready_s"]["compile"]
        assert f"compile {timed['compile']:.3g} ms (ready in {ready:.3g} s)" in report
    for mode in skipped:  # where torch.compile cannot run here, the report says why
        assert f"{mode} skipped: " in report
    # the int8 candidate is the recipe searched on the validation split, recorded exactly
    recipes = read_json(run / "compile" / "cpu-auto" / "recipes.json")
    assert recipes["split"] == "val" and recipes["chosen"] is not None
    statuses = {row["status"] for row in recipes["rows"]}
    assert "accepted" in statuses and statuses <= {"accepted", "rejected", "pruned", "failed"}
    built = read_json(run / "compile" / "cpu-auto" / "onnxruntime-int8" / "artifact.json")
    assert built["recipe"] == recipes["chosen"]
    assert "int8 recipes searched on the val split" in report
    assert "| recipe | p50 ms | accuracy | drop | size MiB | verdict |" in report


STRICT_AUTO_TARGET = """\
  - name: cpu-strict
    runner: local-cpu
    engine: auto
    optimise_seconds: 60
    constraints: {max_accuracy_drop: 0.0}
"""


@pytest.mark.slow
def test_a_recipe_over_the_drop_limit_is_rejected_by_measurement(tmp_path: Path) -> None:
    """With no drop allowed the search scores recipes and rejects those that lose accuracy,
    saying by how much; whatever it keeps lost nothing on the validation split."""
    project = make_repo(tmp_path / "repo", trials=1, extra_targets=STRICT_AUTO_TARGET)
    run = api.run(project, bench_seconds=1, targets=["cpu-strict"]).root
    recipes = read_json(run / "compile" / "cpu-strict" / "recipes.json")
    scored = [row for row in recipes["rows"] if row.get("drop") is not None]
    assert scored
    for row in scored:
        if row["status"] == "rejected":
            assert row["drop"] > 0
            assert f"over the limit 0 by {row['drop']:.4f}" in row["reason"]
        elif row["status"] == "accepted":
            assert row["drop"] <= 0
    failed = read_json(run / "compile" / "cpu-strict" / "failed.json")
    if recipes["chosen"] is None:
        assert (
            "no int8 recipe kept the validation accuracy drop within 0"
            in failed["onnxruntime-int8"]
        )
