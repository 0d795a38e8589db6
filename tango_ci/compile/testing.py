"""The test suite every compile backend runs (as Optuna ships its storage tests).

Subclass :class:`BackendTestSuite` in a test module, set ``engine``, ``precision`` and
``tolerance`` (and ``options``), and pytest runs each test for that backend::

    class TestTvmFp32(BackendTestSuite):
        engine, precision, tolerance = "tvm", "fp32", 1e-4

Needs pytest, so import it from tests only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from tango_ci.compile import BuildRequest, check_request, get_compiler, load_artifact
from tango_ci.spec import RunnerSpec, TargetSpec, find_repo_root, load_runner


class BackendTestSuite:
    engine: ClassVar[str]
    precision: ClassVar[str] = "fp32"
    tolerance: ClassVar[float] = 1e-4  # max |difference| to onnxruntime fp32, per logit
    min_cosine: ClassVar[float] = 0.999
    batch: ClassVar[int] = 2
    options: ClassVar[dict[str, Any]] = {}
    runner_name: ClassVar[str] = "local-cpu"
    image_size: ClassVar[int] = 16

    # ------------------------------------------------------------------ fixtures
    @pytest.fixture(scope="class")
    def runner(self) -> RunnerSpec:
        # the runner files of the repository the tests run in (a fork has its own)
        return load_runner(find_repo_root(Path.cwd()) / "runners" / f"{self.runner_name}.yaml")

    @pytest.fixture(scope="class")
    def model_dir(self, tmp_path_factory) -> Path:
        """A tiny trained-looking network as the train stage writes it, plus its ONNX file."""
        import torch

        from tango_ci.contracts import TrainedModel
        from tango_ci.export import export_onnx
        from tango_ci.models import build_model
        from tango_ci.rundir import write_record

        folder = tmp_path_factory.mktemp("model")
        torch.manual_seed(0)
        model = build_model("resnet", "xs", 4).eval()
        torch.save(model.state_dict(), folder / "best.pt")
        write_record(
            folder,
            TrainedModel(
                task="classification",
                family="resnet",
                name="resnet-xs",
                architecture="resnet-xs",
                image_size=self.image_size,
                classes=("a", "b", "c", "d"),
                shape={"level": "xs"},
            ),
        )
        export_onnx(model, folder / "model.onnx", (1, 3, self.image_size, self.image_size))
        return folder

    @pytest.fixture(scope="class")
    def inputs(self) -> np.ndarray:
        rng = np.random.default_rng(0)
        return rng.standard_normal((self.batch, 3, self.image_size, self.image_size)).astype(
            np.float32
        )

    @pytest.fixture(scope="class")
    def reference(self, model_dir: Path, inputs: np.ndarray) -> np.ndarray:
        import onnxruntime as ort

        session = ort.InferenceSession(
            str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        return session.run(None, {session.get_inputs()[0].name: inputs})[0]

    @pytest.fixture(scope="class")
    def artifact(
        self, model_dir: Path, runner: RunnerSpec, inputs: np.ndarray, tmp_path_factory
    ) -> tuple[Path, dict]:
        target = TargetSpec(
            name="suite",
            runner=runner.name,
            engine=self.engine,
            precision=self.precision,
            batch=self.batch,
        )
        check_request(target, runner)
        out = tmp_path_factory.mktemp("artifact")
        rng = np.random.default_rng(1)
        calibration = rng.standard_normal((16, 3, self.image_size, self.image_size)).astype(
            np.float32
        )
        manifest = get_compiler(self.engine).build(
            BuildRequest(
                onnx_path=model_dir / "model.onnx",
                out_dir=out,
                target=target,
                runner=runner,
                calibration=calibration if self.precision == "int8" else None,
                options={"model_dir": model_dir, **self.options},
            )
        )
        return out, manifest

    # ------------------------------------------------------------------ tests
    def test_parity_with_onnxruntime_fp32(self, artifact, inputs, reference) -> None:
        output = load_artifact(artifact[0], threads=1).run(inputs)[0]
        assert output.shape == reference.shape
        difference = np.abs(output - reference).max()
        cosine = float(
            (output * reference).sum() / np.linalg.norm(output) / np.linalg.norm(reference)
        )
        assert difference <= self.tolerance, f"max |difference| {difference:.3g}"
        assert cosine >= self.min_cosine

    def test_batch_items_are_independent(self, artifact, inputs) -> None:
        """Each item of a batch gives what it gives alone (no mixing across the batch)."""
        predictor = load_artifact(artifact[0], threads=1)
        together = predictor.run(inputs)[0]
        swapped = predictor.run(inputs[::-1].copy())[0]
        assert np.abs(together[::-1] - swapped).max() <= max(self.tolerance, 1e-5)

    def test_manifest_describes_the_artifact(self, artifact) -> None:
        import json

        from tango_ci.rundir import file_sha256

        folder, manifest = artifact
        assert json.loads((folder / "artifact.json").read_text()) == manifest
        assert manifest["engine"] == self.engine and manifest["precision"] == self.precision
        path = folder / manifest["file"]
        assert manifest["sha256"] == file_sha256(path)
        assert manifest["bytes"] == path.stat().st_size

    def test_reload_in_a_fresh_process(self, artifact, inputs, tmp_path) -> None:
        here = load_artifact(artifact[0], threads=1).run(inputs)[0]
        np.save(tmp_path / "inputs.npy", inputs)
        code = (
            "import sys, numpy as np; from pathlib import Path; "
            "from tango_ci.compile import load_artifact; "
            "out = load_artifact(Path(sys.argv[1]), threads=1).run(np.load(sys.argv[2]))[0];"
            " np.save(sys.argv[3], out)"
        )
        subprocess.run(
            [
                sys.executable,
                "-c",
                code,
                str(artifact[0]),
                str(tmp_path / "inputs.npy"),
                str(tmp_path / "out.npy"),
            ],
            check=True,
        )
        assert np.abs(np.load(tmp_path / "out.npy") - here).max() <= 1e-5
