"""Champion/challenger on new labelled data (``gate.challenger``): production's artifact, pulled
from the DVC remote and checked, and the new one are scored here on the same images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tango_ci import api
from tango_ci.dvcstore import push_dir
from tango_ci.exceptions import SpecError, TangoError
from tango_ci.registry import Registry
from tango_ci.rundir import read_json
from tests.conftest import git
from tests.pipeline_helpers import make_repo

pytestmark = pytest.mark.slow

CHALLENGER = (
    "gate:\n  challenger: {{new_data: new-labels, margin: {margin}, tolerance: {tolerance}}}\n"
)


def _write_spec(project: Path, margin: float, tolerance: float) -> None:
    path = project / "project.yaml"
    text = path.read_text().split("gate:\n")[0]
    path.write_text(text + CHALLENGER.format(margin=margin, tolerance=tolerance))


def _dimmed_copies(project: Path, per_class: int) -> None:
    """New labelled images: the dataset's, dimmed (other bytes, the same classes)."""
    for folder in sorted(p for p in (project / "data").iterdir() if p.is_dir()):
        out = project / "new-labels" / folder.name
        out.mkdir(parents=True)
        for source in sorted(folder.glob("*.png"))[:per_class]:
            pixels = np.asarray(Image.open(source).convert("RGB"), dtype=np.float32) * 0.7
            Image.fromarray(pixels.astype(np.uint8)).save(out / source.name)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A tiny project through bench with new labelled data, its artifact promoted to prod."""
    root = tmp_path_factory.mktemp("challenger") / "repo"
    project = make_repo(root, trials=1, per_class=12, extra_targets="")
    _write_spec(project, 0.0, 0.01)
    api.run(project, until="data")  # synthesises the data the new images are made from
    _dimmed_copies(project, 4)
    run = api.run(project, bench_seconds=1, until="bench")
    metrics = read_json(run.root / "bench" / "cpu-fp32" / "metrics.json")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny")
    stored = push_dir(Path(metrics["artifact"]), str(root.parent / "dvc-remote"))
    registry = Registry(root)
    classes = read_json(run.root / "data" / "classes.json")
    record = {"task": "classification", "classes": classes, "metrics": {"accuracy": 0.0}}
    registry.register("tiny-cpu-fp32", record | {"artifact": stored, "run": run.id})
    registry.promote("tiny-cpu-fp32", "v1.0.0", push=False)
    return project, run


def _gate(project: Path, *, again: bool = False) -> dict:
    """The gate's checks: forked from the measured run, or (``again``, after the spec changed)
    from a new run, whose training repeats the first one's exactly (same seeds)."""
    run = api.run(project, bench_seconds=1) if again else api.run(project, from_stage="gate")
    return {
        c["check"]: c
        for c in read_json(run.root / "gate" / "decision.json")["targets"]["cpu-fp32"]["checks"]
    }


def test_the_data_stage_keeps_the_new_images_apart(measured) -> None:
    _, run = measured
    with np.load(run.root / "data" / "new.npz") as new:
        labels = new["labels"]
    classes = read_json(run.root / "data" / "classes.json")
    assert np.bincount(labels).tolist() == [4] * len(classes)
    assert run.manifest("data")["summary"]["images"]["new"] == len(labels)


def test_the_challenger_is_scored_beside_production_on_the_same_images(measured) -> None:
    project, _ = measured
    checks = _gate(project)
    new = next(c for n, c in checks.items() if n.startswith("accuracy on new data (12 images)"))
    held = next(c for n, c in checks.items() if "on the test split" in n and "production" in n)
    # production is this very artifact: equal scores, so margin 0 passes
    assert new["value"] == new["champion"] and new["status"] == "pass"
    assert new["production"] == "tiny-cpu-fp32@v1.0.0"
    assert held["value"] == held["champion"] and held["limit"] == pytest.approx(
        held["champion"] - 0.01
    )
    assert not any("recorded metric" in str(c.get("note")) for c in checks.values())

    _write_spec(project, 0.05, 0.01)  # must now beat production by 5 points: it cannot
    checks = _gate(project, again=True)
    new = next(c for n, c in checks.items() if n.startswith("accuracy on new data"))
    assert new["status"] == "fail" and new["limit"] == pytest.approx(new["champion"] + 0.05)
    assert "+ margin 0.05" in new["check"]


def test_a_tampered_production_artifact_fails_the_gate_naming_it(measured) -> None:
    """Production's artifact is checked against its registry record before it is loaded: a
    changed object in the DVC remote fails the comparison instead of scoring it."""
    project, _ = measured
    remote = project.parents[2] / "dvc-remote"
    objects = [p for p in remote.rglob("*") if p.is_file() and not p.name.endswith(".dir")]
    saved = {p: p.read_bytes() for p in objects}
    try:
        for path in objects:
            path.chmod(0o644)
            path.write_bytes(saved[path] + b"tampered")
        checks = list(_gate(project).values())
    finally:
        for path, data in saved.items():
            path.write_bytes(data)
    assert checks[-1]["check"] == "champion/challenger" and checks[-1]["status"] == "fail"
    note = checks[-1]["note"]
    assert "tiny-cpu-fp32@v1.0.0 could not be scored here" in note
    assert "from the DVC remote has sha256" in note and "the remote copy was altered" in note


def test_images_from_the_training_data_are_refused(measured, tmp_path: Path) -> None:
    project, run = measured
    train = read_json(run.root / "data" / "files.json")
    source = next(f["path"] for f in train if f["split"] == "train")
    copy = project / "new-labels" / Path(source).parent / "leaked.png"
    copy.write_bytes((project / "data" / source).read_bytes())
    try:
        with pytest.raises(TangoError, match="the same image is in the training data"):
            api.run(project, until="data")
    finally:
        copy.unlink()


def test_a_class_the_project_lacks_is_named(measured) -> None:
    project, _ = measured
    odd = project / "new-labels" / "zebra"
    odd.mkdir()
    Image.new("RGB", (8, 8)).save(odd / "z.png")
    try:
        with pytest.raises(TangoError, match=r"zebra: class 'zebra' is not one of"):
            api.run(project, until="data")
    finally:
        (odd / "z.png").unlink()
        odd.rmdir()


def test_without_new_images_the_gate_says_what_it_compared(measured) -> None:
    project, _ = measured
    folder = project / "new-labels"
    folder.rename(project.parent / "kept")
    try:
        checks = list(_gate(project, again=True).values())
    finally:
        (project.parent / "kept").rename(folder)
    assert checks[-1]["production"] == "tiny-cpu-fp32@v1.0.0"  # production's recorded metric
    assert checks[-1]["note"].startswith("new-labels has no labelled images yet")


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ("{new_data: new, holdout: missing}", "challenger.holdout: holdout folder 'missing'"),
        ("{new_data: ../../../elsewhere}", "leads outside the repository"),
        ("{new_data: new, holdout: new}", "must not be the new data folder"),
        ("{new_data: new, margin: 2}", "margin"),
    ],
)
def test_bad_challenger_settings_are_one_line(tmp_path: Path, gate: str, message: str) -> None:
    project = make_repo(tmp_path / "repo", extra_targets="")
    path = project / "project.yaml"
    path.write_text(path.read_text() + f"gate:\n  challenger: {gate}\n")
    (project / "new").mkdir()
    with pytest.raises(SpecError, match=message):
        api.load_project(project)
