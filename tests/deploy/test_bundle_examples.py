"""Every example project's bundle, installed into one fresh virtualenv with only the bundle's
requirements.txt (no torch, no tango_ci there), answers the whole validation split as bench
scores it (issue 16's acceptance): classification, the same label for every image; detection,
the same mAP50 and mAP50-95 within 0.001. The deploy tests' tiny project answers its test
split there too.

Each example is its own project.yaml, copied into a temporary repository and shrunk for time
(a few synthetic images, one trial of one epoch, one training epoch, a short specialisation,
detection at 32 px, no latency or size budgets, so that every host finds a feasible subnet);
its task, families, engines and targets stay. The pipeline runs through bench for the one
target bundled: onnxruntime fp32 for the two plain examples, and for the supernet the int8
target, whose subnet comes from ``specialise``. (``x86-auto`` of example-shapes stays in the
project, but is not compiled or measured: it would build TVM and PyTorch candidates, which a
bundle does not carry.)

Thresholds: bench scores mAP at the project's evaluation thresholds (``detection.conf``,
``iou``, ``max_det``: a low conf, to see the whole precision-recall curve), while a bundle
answers at the deployment thresholds of its postprocess.json (``detection.deploy``). The
bundle is therefore run with ``predict --conf --iou --max-det`` set to the evaluation
thresholds, and its boxes (in the image files' own pixels) are scored against the label
files by the project's own metric code, beside bench's evaluator on the same split. A
detector of one epoch scores an mAP of about 0 on both sides, so their boxes are compared too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tango_ci import api
from tango_ci.rundir import RunDir, read_json
from tango_ci.runtime import Bundle
from tests.conftest import REPO, git

pytestmark = pytest.mark.slow

#: the project.yaml fields shrunk for time, whatever the example says
SEARCH = {"trials": 1, "epochs": 1}
SPECIALISE = {"population": 4, "generations": 1, "time_budget_s": 5, "calibration_images": 16}
BUDGETS = ("latency_ms", "model_size_mb")
DETECTION_SIZE = 32


@dataclass(frozen=True)
class Example:
    project: Path
    run: RunDir
    target: str
    bundle: Path

    @property
    def spec(self):
        return api.load_project(self.project)


def shrunk(name: str, per_class: int) -> dict:
    """``projects/NAME/project.yaml`` with fewer images, epochs and trials, and no budgets."""
    doc = yaml.safe_load((REPO / "projects" / name / "project.yaml").read_text())
    doc["data"]["synth"]["images_per_class"] = per_class
    search = doc["search"]
    if search.get("strategy") != "supernet":
        search.update(SEARCH, levels=search.get("levels", ["xs"])[:1])
    if doc["task"] == "detection":
        doc["data"]["image_size"] = doc["data"]["synth"]["size"] = DETECTION_SIZE
        search["image_sizes"] = [DETECTION_SIZE]
    doc["train"].update(epochs=1, patience=50)
    if "specialise" in doc:
        doc["specialise"].update(SPECIALISE)
    for target in doc["targets"]:
        limits = target.get("constraints", {})
        target["constraints"] = {k: v for k, v in limits.items() if k not in BUDGETS}
    return doc


def deploy_example(name: str, target: str, per_class: int, root: Path) -> Example:
    """The shrunk example in a repository of its own, run through bench for ``target``, and
    that target's bundle."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    shutil.copytree(REPO / "runners", root / "runners")
    shutil.copytree(REPO / "schemas", root / "schemas")
    project = root / "projects" / name
    project.mkdir(parents=True)
    (project / "project.yaml").write_text(yaml.safe_dump(shrunk(name, per_class)))
    run = api.run(project, bench_seconds=1, until="bench", targets=[target])
    bundle = root / "bundles" / target
    api.deploy_run(project, target, bundle, run.id)
    return Example(project, run, target, bundle)


class FreshRuntime:
    """One virtualenv; each bundle's requirements.txt installed into it (once per content)."""

    def __init__(self, folder: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        self.python = folder / "bin" / "python"
        self.folder = folder
        self.installed: set[str] = set()

    def install(self, bundle: Path) -> None:
        requirements = (bundle / "requirements.txt").read_text()
        if requirements in self.installed:
            return
        done = subprocess.run(
            [
                str(self.python),
                "-m",
                "pip",
                "install",
                "-q",
                "-r",
                str(bundle / "requirements.txt"),
            ],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        probe = "import importlib.util as u; print(u.find_spec('torch'), u.find_spec('tango_ci'))"
        found = subprocess.run(
            [str(self.python), "-c", probe], capture_output=True, text=True, cwd=self.folder
        )
        assert found.stdout.split() == ["None", "None"], found.stdout + found.stderr
        self.installed.add(requirements)

    def predict(self, bundle: Path, files: list[Path], *options: str) -> list[dict]:
        """``python -m tango_runtime predict`` run from inside the bundle, one answer a file."""
        self.install(bundle)
        answers = subprocess.run(
            [str(self.python), "-m", "tango_runtime", "predict", *options, *map(str, files)],
            capture_output=True,
            text=True,
            cwd=bundle,
        )
        assert answers.returncode == 0, answers.stderr[-2000:]
        records = [json.loads(line) for line in answers.stdout.splitlines()]
        assert [r["image"] for r in records] == [str(f) for f in files]
        return records


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> FreshRuntime:
    return FreshRuntime(tmp_path_factory.mktemp("runtime") / "venv")


def test_the_tiny_bundle_answers_its_test_split_as_bench(measured, bundle: Path, runtime) -> None:
    """The deploy tests' own tiny project (tests/deploy/conftest.py), on the split bench
    scores: the test split."""
    from tango_ci.bench.accuracy import predict_labels
    from tango_ci.compile import load_artifact
    from tango_ci.data.dataset import load_split

    project, run = measured
    data = run.stage_dir("data")
    split = "test" if (data / "test.npz").is_file() else "val"
    listed = [f for f in read_json(data / "files.json") if f["split"] == split]
    answers = runtime.predict(bundle, [project / "data" / f["path"] for f in listed])
    images, expected = load_split(data, split)
    target = api.load_project(project).targets[0].name
    bench = predict_labels(load_artifact(run.stage_dir("compile") / target), images, 1)
    assert len(answers) == len(listed) == len(bench) > 0
    assert [a["class"] for a in answers] == bench.tolist()  # identical labels, image for image
    assert [f["label"] for f in listed] == expected.tolist()


@pytest.mark.parametrize(
    ("name", "target"), [("example-shapes", "x86-cpu"), ("example-supernet", "x86-int8")]
)
def test_a_classification_example_labels_the_validation_split_as_bench(
    name: str, target: str, runtime: FreshRuntime, tmp_path: Path
) -> None:
    from tango_ci.bench.accuracy import fixed_batches
    from tango_ci.compile import load_artifact
    from tango_ci.data.dataset import load_split, preprocess

    example = deploy_example(name, target, 20, tmp_path / "repo")
    data = example.run.stage_dir("data")
    listed = [f for f in read_json(data / "files.json") if f["split"] == "val"]
    images, truth = load_split(data, "val")
    assert len(listed) == len(images) >= 6  # every validation image, in the data stage's order
    assert [f["label"] for f in listed] == truth.tolist()
    answers = runtime.predict(
        example.bundle, [example.project / "data" / f["path"] for f in listed]
    )
    # bench: the artifact it measured, at the target's batch size, on the data stage's images
    predictor = load_artifact(example.run.stage_dir("compile") / target)
    batch = example.spec.target(target).batch
    outputs = [
        np.asarray(predictor.run(preprocess(chunk))[0])[:real]
        for chunk, real in fixed_batches(images, batch)
    ]
    logits = np.concatenate(outputs).astype(np.float64)
    exp = np.exp(logits - logits.max(1, keepdims=True))
    bench = exp / exp.sum(1, keepdims=True)
    assert [a["class"] for a in answers] == bench.argmax(1).tolist()  # identical labels
    np.testing.assert_allclose([a["probabilities"] for a in answers], bench, atol=1e-4)
    if name == "example-supernet":  # the network compiled is the subnet specialised for it
        inputs = read_json(example.run.stage_dir("compile") / "manifest.json")["inputs"]
        assert inputs[f"onnx/{target}"]["path"] == f"specialise/{target}/model.onnx"


@pytest.fixture(scope="module")
def detection(tmp_path_factory) -> Example:
    root = tmp_path_factory.mktemp("det") / "repo"
    return deploy_example("example-shapes-det", "x86-cpu", 10, root)


@dataclass(frozen=True)
class Scored:
    """One side's boxes per image (x1, y1, x2, y2, score, class) and its metrics."""

    boxes: list[np.ndarray]
    metrics: dict


def as_boxes(answer: dict) -> np.ndarray:
    rows = [[*b["box"], b["score"], b["class"]] for b in answer["boxes"]]
    return np.asarray(rows, np.float32).reshape(-1, 6)


def pixels(file: Path) -> tuple[int, int]:
    with Image.open(file) as image:
        return image.size


def truths_in_pixels(files: list[Path], classes: int) -> list[np.ndarray]:
    """Each image's labelled boxes (class, x1, y1, x2, y2) in the image file's own pixels."""
    from tango_ci.data.yolo import label_path, parse_labels

    truths = []
    for file in files:
        width, height = pixels(file)
        rows, problems = parse_labels(label_path(file), classes, str(file))
        assert not problems
        cx, cy, w, h = (rows[:, 1:] * [width, height, width, height]).T
        truths.append(np.stack([rows[:, 0], cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1))
    return truths


def score_both(example: Example, runtime: FreshRuntime) -> tuple[list[Path], Scored, Scored]:
    """The validation images, the bundle's side and bench's, at the evaluation thresholds.

    The bundle: ``predict`` on the image files, its boxes (in the files' pixels) scored against
    the label files by :func:`detection_metrics`. Bench: its evaluator on the validation split
    with the artifact bench measured, at the target's batch size; its boxes are those of its
    evaluation loop (``evaluate`` keeps them to itself), in the letterboxed input's pixels."""
    from tango_ci.bench.accuracy import fixed_batches
    from tango_ci.compile import load_artifact
    from tango_ci.context import StageContext
    from tango_ci.data.yolo import read_dataset
    from tango_ci.detection.metrics import detection_metrics
    from tango_ci.detection.postprocess import decode
    from tango_ci.detection.search_space import preprocess_detection
    from tango_ci.plugins import get_task
    from tango_ci.rundir import StageRecorder

    spec, run = example.spec, example.run
    dataset, _ = read_dataset(spec.data.resolved)
    assert dataset is not None
    listed = read_json(run.stage_dir("data") / "files.json")["val"]
    files = [dataset.root / f for f in listed]
    limits = spec.detection
    thresholds = ["--conf", str(limits.conf), "--iou", str(limits.iou)]
    answers = runtime.predict(example.bundle, files, *thresholds, "--max-det", str(limits.max_det))
    names = list(dataset.names)
    ours = [as_boxes(a) for a in answers]
    ctx = StageContext(run, spec, StageRecorder(run, "bench"))
    evaluator = get_task(spec.task).evaluator(ctx, run.model_dir(example.target), "val")
    assert evaluator.files == listed and evaluator.size == len(files)
    predictor = load_artifact(run.stage_dir("compile") / example.target)
    batch = spec.target(example.target).batch
    theirs: list[np.ndarray] = []
    for chunk, real in fixed_batches(evaluator.images, batch):
        raw = np.asarray(predictor.run(preprocess_detection(chunk))[0])
        theirs += decode(raw, evaluator.thresholds)[:real]
    return (
        files,
        Scored(ours, detection_metrics(ours, truths_in_pixels(files, len(names)), names)),
        Scored(theirs, evaluator.evaluate(predictor, batch)),
    )


@pytest.fixture(scope="module")
def detection_scored(detection: Example, runtime: FreshRuntime):
    return score_both(detection, runtime)


def test_the_detection_example_scores_the_validation_split_as_bench(
    detection: Example, detection_scored
) -> None:
    files, ours, bench = detection_scored
    assert len(files) >= 4 and ours.metrics["instances"] == bench.metrics["instances"] > 0
    for metric in ("map50", "map50_95"):
        assert abs(ours.metrics[metric] - bench.metrics[metric]) <= 0.001
    # a network of one epoch scores (near) 0 on both sides: its boxes must agree as well. The
    # example's images are the network's input size, so the letterbox leaves them as they are
    # and the bundle's boxes are bench's, clipped to the image
    size = detection.spec.data.image_size
    assert Bundle(detection.bundle).preprocess["size"] == size
    assert all(pixels(f) == (size, size) for f in files)
    assert sum(len(b) for b in ours.boxes) > 0
    for mine, theirs in zip(ours.boxes, bench.boxes, strict=True):
        expected = theirs.copy()
        expected[:, :4] = expected[:, :4].clip(0, size)
        np.testing.assert_allclose(mine, expected, atol=1e-4)


def test_predict_thresholds_replace_the_bundles_own_for_one_call(
    detection: Example, detection_scored, tmp_path: Path
) -> None:
    """Greedy NMS suppresses a box only by a stronger one, so at a higher ``--conf`` (same
    iou and max_det) the bundle keeps exactly the boxes scored above it; without options it
    answers at postprocess.json's deployment thresholds in the same way."""
    from tango_ci.runtime.__main__ import main

    files, ours, _ = detection_scored
    limits = detection.spec.detection
    deploy = limits.deploy
    assert (deploy.iou, deploy.max_det) == (limits.iou, limits.max_det)

    def answered(*options: str) -> list[np.ndarray]:
        out = tmp_path / "answers.jsonl"
        argv = ["predict", "--bundle", str(detection.bundle), "--out", str(out), *options]
        assert main([*argv, *map(str, files)]) == 0
        return [as_boxes(json.loads(line)) for line in out.read_text().splitlines()]

    scores = np.concatenate([b[:, 4] for b in ours.boxes])
    # scores themselves (exact in float32): below the lowest keeps all, the highest none,
    # the lowest (where they differ) some
    low, high = scores.min(), scores.max()
    cuts = {float(np.nextafter(low, np.float32(0))), float(low), float(high)}
    kept = {}
    for cut in sorted(cuts):
        options = ["--conf", str(cut), "--iou", str(limits.iou), "--max-det", str(limits.max_det)]
        kept[cut] = answers = answered(*options)
        for mine, everything in zip(answers, ours.boxes, strict=True):
            np.testing.assert_array_equal(mine, everything[everything[:, 4] > cut])
    assert sum(map(len, kept[min(cuts)])) == len(scores) > 0
    assert sum(map(len, kept[float(high)])) == 0
    for mine, everything in zip(answered(), ours.boxes, strict=True):  # deployment thresholds
        np.testing.assert_array_equal(mine, everything[everything[:, 4] > deploy.conf])


def test_thresholds_for_a_classification_bundle_are_refused(bundle: Path, tmp_path: Path, capsys):
    from tango_ci.runtime.__main__ import main

    image = tmp_path / "grey.png"
    Image.new("RGB", (20, 20), (128, 128, 128)).save(image)
    assert main(["predict", "--bundle", str(bundle), "--conf", "0.5", str(image)]) == 2
    error = capsys.readouterr().err.splitlines()
    assert error == ["error: --conf: a classification bundle has no thresholds"]
    with pytest.raises(SystemExit) as usage:
        main(["predict", "--bundle", str(bundle), "--conf", "1.5", str(image)])
    assert usage.value.code == 2
    assert "--conf: 1.5 is not between 0 and 1" in capsys.readouterr().err
