"""A TVM target's bundle: the compiled library runs in the bundle's runtime (the same runner
bench uses) and answers as bench did; its requirements pin the TVM runtime it was built with."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from tango_ci import api
from tango_ci.bench.accuracy import predict_labels
from tango_ci.compile import load_artifact
from tango_ci.data.dataset import load_split
from tango_ci.runtime import Bundle
from tests.pipeline_helpers import make_repo

pytestmark = pytest.mark.slow

TVM_TARGET = """\
  - name: cpu-tvm
    runner: local-cpu
    engine: tvm
    precision: fp32
    batch: 2
"""


def test_a_tvm_bundle_answers_as_bench_did(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "repo", trials=1, per_class=8, extra_targets=TVM_TARGET)
    run = api.run(project, bench_seconds=1, until="bench", targets=["cpu-tvm"])
    out = tmp_path / "bundle"
    manifest = api.deploy_run(project, "cpu-tvm", out, run.id)
    assert (manifest["engine"], manifest["device"], manifest["batch"]) == ("tvm", "cpu", 2)
    assert (out / "requirements.txt").read_text().splitlines() == [
        "numpy",
        "Pillow",
        f"apache-tvm=={version('apache-tvm')}",
        f"apache-tvm-ffi=={version('apache-tvm-ffi')}",
    ]
    images, _ = load_split(run.stage_dir("data"), "test")
    bundle = Bundle(out)
    answers = bundle.answer(list(images[:5]))  # 5 images: batches of 2, the last padded
    bench = predict_labels(load_artifact(run.stage_dir("compile") / "cpu-tvm"), images[:5], 2)
    assert [a["class"] for a in answers] == bench.tolist()
    assert all(np.isclose(sum(a["probabilities"]), 1.0, atol=1e-4) for a in answers)
