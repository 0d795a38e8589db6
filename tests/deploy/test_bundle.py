"""A deployment bundle lists every file with its hash, refuses a tampered file before it loads
anything, and bundles a pulled artifact like its run (its answers in a fresh virtualenv with
numpy, Pillow and onnxruntime only: test_bundle_examples.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tango_ci import api
from tango_ci.exceptions import TangoError
from tango_ci.runtime import Bundle, BundleError

pytestmark = pytest.mark.slow


def test_the_bundle_lists_every_file_with_its_hash(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    listed = set(manifest["files"])
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert on_disk - listed == {"manifest.json"}
    assert {
        "model/model.onnx",
        "preprocess.json",
        "labels.json",
        "tango_runtime/bundle.py",
    } <= listed
    assert "torch" not in (bundle / "requirements.txt").read_text()


def test_an_existing_folder_is_never_overwritten(measured, bundle: Path) -> None:
    project, run = measured
    before = (bundle / "manifest.json").read_bytes()
    target = api.load_project(project).targets[0].name
    with pytest.raises(TangoError, match="exists and is not empty; nothing was written"):
        api.deploy_run(project, target, bundle, run.id)
    assert (bundle / "manifest.json").read_bytes() == before


@pytest.mark.parametrize(
    "victim", ["model/model.onnx", "preprocess.json", "tango_runtime/images.py"]
)
def test_a_tampered_file_is_refused_at_load_naming_it(bundle: Path, tmp_path: Path, victim) -> None:
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    with open(copy / victim, "ab") as handle:
        handle.write(b" ")
    with pytest.raises(BundleError, match=f"^{victim}: sha256 differs from manifest.json"):
        Bundle(copy)


def test_files_swapped_after_their_check_are_never_the_ones_loaded(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the hash check and the load, labels and model are swapped in the bundle (a
    race an attacker with write access to the folder can win): the bundle loads what it
    hashed, from its private copy."""
    import shutil

    from tango_ci.runtime import bundle as module

    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    honest = Bundle(copy)
    image = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    expected = honest.answer([image])[0]
    checked = module.verify

    def verify_then_swap(folder: Path, manifest: dict, copy_to: Path | None = None):
        found = checked(folder, manifest, copy_to)
        (folder / "labels.json").write_text(json.dumps(["evil"] * len(honest.labels)))
        (folder / "model" / "model.onnx").write_bytes(b"swapped")
        return found

    monkeypatch.setattr(module, "verify", verify_then_swap)
    loaded = Bundle(copy)
    assert loaded.labels == honest.labels
    assert loaded.answer([image])[0] == expected


def test_a_model_swapped_after_its_check_is_never_bundled(
    measured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The artifact's model was hashed, then copied: one swapped in between went into the
    bundle, listed under its own hash. The copy is what is checked now; nothing is written."""
    import shutil

    from tango_ci import deploy

    project, run = measured
    target = api.load_project(project).targets[0].name
    folder = run.stage_dir("compile") / target
    model = folder / json.loads((folder / "artifact.json").read_text())["file"]
    original, copy = model.read_bytes(), shutil.copyfile

    def swap_then_copy(source, destination, **kwargs):
        if Path(source) == model:
            # an attacker's write after any check: still a valid network (a doc_string added)
            model.write_bytes(original + b"\x32\x04evil")
        return copy(source, destination, **kwargs)

    monkeypatch.setattr(deploy.shutil, "copyfile", swap_then_copy)
    out = tmp_path / "bundle"
    try:
        with pytest.raises(TangoError, match=r"sha256 differs from its artifact\.json"):
            api.deploy_run(project, target, out, run.id)
    finally:
        model.write_bytes(original)
    assert list(tmp_path.iterdir()) == []


def test_a_manifest_pointing_outside_the_bundle_is_refused(bundle: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["../../etc/passwd"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="is not a path inside the bundle"):
        Bundle(copy)


def test_a_pulled_registry_artifact_bundles_like_its_run(measured, bundle, tmp_path) -> None:
    """Where the run is not on the device (CI), the bundle comes from the artifact pulled
    from the DVC remote and the version's record: same model, same answers."""
    from tango_ci.deploy import bundle_from_artifact

    project, run = measured
    spec = api.load_project(project)
    target = spec.targets[0].name
    record = {
        "project": spec.name,
        "target": target,
        "run": run.id,
        "classes": json.loads((bundle / "labels.json").read_text()),
        "metrics": {"p50_ms": 1.0},
    }
    pulled = tmp_path / "pulled"
    import shutil

    shutil.copytree(run.stage_dir("compile") / target, pulled)
    manifest = bundle_from_artifact(
        spec, pulled, record, tmp_path / "b", f"{spec.name}-{target}@v1.0.0"
    )
    assert manifest["version"] == f"{spec.name}-{target}@v1.0.0"
    ours, theirs = Bundle(tmp_path / "b"), Bundle(bundle)
    assert ours.preprocess == theirs.preprocess and ours.labels == theirs.labels
    images = [
        np.random.default_rng(i).integers(0, 255, (20, 24, 3), dtype=np.uint8) for i in range(4)
    ]
    assert ours.answer(images) == theirs.answer(images)


def test_the_bundle_records_the_gate_verdict(bundle: Path, tmp_path: Path) -> None:
    """A bundle says whether its model passed the gate, so a model that failed is never
    mistaken for one to serve (`tango deploy` warns of both cases)."""
    from types import SimpleNamespace

    from tango_ci.deploy import gate_verdict

    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["gate"] == {"passed": None, "failed": []}  # measured, not gated yet
    (tmp_path / "gate").mkdir()
    checks = [
        {"check": "latency p95", "status": "pass"},
        {"check": "accuracy on the test split", "status": "fail"},
    ]
    decision = {"passed": False, "targets": {"cpu": {"passed": False, "checks": checks}}}
    (tmp_path / "gate" / "decision.json").write_text(json.dumps(decision))
    run = SimpleNamespace(stage_dir=lambda stage: tmp_path / stage)
    assert gate_verdict(run, "cpu") == {"passed": False, "failed": ["accuracy on the test split"]}
    assert gate_verdict(run, "other") == {"passed": None, "failed": []}
