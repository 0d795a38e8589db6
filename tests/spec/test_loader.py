"""Valid files become frozen dataclasses whose defaults are the schema's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tango_ci.exceptions import SpecError
from tango_ci.spec import load_project, load_runner, models, spec_files
from tango_ci.spec._schema import load_schema
from tests.conftest import REPO, write_project


def test_every_committed_spec_file_is_valid() -> None:
    files = spec_files(REPO)
    assert {f.stem for f in files if f.parent.name == "runners"} >= {
        "local-cpu",
        "jetson-orin-nano",
        "raspberry-pi-5",
    }
    assert any(f.parent.name == "example-shapes" for f in files)
    for path in files:
        if path.name == "project.yaml":
            load_project(path, REPO)
        else:
            load_runner(path)


def test_project_becomes_frozen_dataclasses_with_defaults(spec_repo: Path) -> None:
    spec = load_project(write_project(spec_repo, "demo"))
    assert spec.name == "demo" and spec.task == "classification"
    assert spec.search.families == ("resnet", "densenet", "mobilenetv3")  # the task's families
    assert spec.targets[0].precision == "fp32"
    assert spec.targets[0].constraints.latency_percentile == "p95"
    assert spec.data.resolved == spec_repo / "projects" / "demo" / "data"
    assert spec.runners["local-cpu"].hardware.arch == "x86_64"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]


def test_runner_becomes_dataclasses() -> None:
    runner = load_runner(REPO / "runners" / "jetson-orin-nano.yaml")
    assert runner.hardware.accelerator.compute_capability == "8.7"
    assert runner.engine("tvm").target == "cuda -arch=sm_87"
    assert runner.engine("nope") is None
    assert runner.threads == 6


def _schema_defaults(node: dict, root: dict) -> dict:
    if "$ref" in node:
        node = root["$defs"][node["$ref"].split("/")[-1]]
    return {
        key: sub.get("default")
        for key, sub in node.get("properties", {}).items()
        if "default" in sub and not isinstance(sub.get("default"), dict)
    }


@pytest.mark.parametrize(
    "cls, definition",
    [
        (models.SearchSpec, "search"),
        (models.TrainSpec, "train"),
        (models.ExportSpec, "export"),
        (models.Constraints, "constraints"),
        (models.GateSpec, "gate"),
        (models.SynthSpec, "synth"),
        (models.TargetSpec, "target"),
        (models.DetectionSpec, "detection"),
    ],
)
def test_dataclass_defaults_match_the_schema(cls: type, definition: str) -> None:
    """The schema is the one definition: a dataclass default that drifts from it is a bug."""
    schema = load_schema("project")
    node = (
        schema["$defs"]["data"]["properties"]["synth"]
        if definition == "synth"
        else schema["$defs"][definition]
    )
    defaults = _schema_defaults(node, schema)
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    for key, value in defaults.items():
        expected = tuple(value) if isinstance(value, list) else value
        assert fields[key] == expected, f"{cls.__name__}.{key}"


def test_imagefolder_with_train_and_val_is_accepted(spec_repo: Path) -> None:
    for split in ("train", "val"):
        for cls in ("a", "b"):
            folder = spec_repo / "projects" / "demo" / "data" / split / cls
            folder.mkdir(parents=True)
            (folder / "x.png").write_bytes(b"not checked here")
    spec = load_project(write_project(spec_repo, "demo", _without_synth()))
    assert spec.data.synth is None


def test_imagefolder_val_missing_a_class_is_refused(spec_repo: Path) -> None:
    for split, classes in (("train", ("a", "b")), ("val", ("a",))):
        for cls in classes:
            folder = spec_repo / "projects" / "demo" / "data" / split / cls
            folder.mkdir(parents=True)
            (folder / "x.png").write_bytes(b"")
    with pytest.raises(SpecError) as info:
        load_project(write_project(spec_repo, "demo", _without_synth()))
    assert info.value.problems[0].message == "'data' val/ lacks the classes b that train/ has"


def test_data_tracked_by_dvc_pointer_is_accepted_before_pull(spec_repo: Path) -> None:
    (spec_repo / "projects" / "demo").mkdir(parents=True)
    (spec_repo / "projects" / "demo" / "data.dvc").write_text("outs:\n- path: data\n")
    spec = load_project(write_project(spec_repo, "demo", _without_synth()))
    assert spec.data.path == "data"


def test_data_path_relative_to_repository_root(spec_repo: Path) -> None:
    for cls in ("a", "b"):
        (spec_repo / "datasets" / "shared" / cls).mkdir(parents=True)
        (spec_repo / "datasets" / "shared" / cls / "1.png").write_bytes(b"")
    text = _without_synth().replace("path: data", "path: datasets/shared")
    spec = load_project(write_project(spec_repo, "demo", text))
    assert spec.data.resolved == spec_repo / "datasets" / "shared"


def _without_synth() -> str:
    from tests.conftest import MINIMAL_PROJECT

    return MINIMAL_PROJECT.replace("  synth: {images_per_class: 10, size: 16}\n", "")


def test_a_project_path_not_found_says_where_to_run_from(
    spec_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual mistake: `tango run projects/NAME` from inside the project's folder."""
    project = write_project(spec_repo, "mine").parent
    monkeypatch.chdir(project)
    with pytest.raises(SpecError) as found:
        load_project(Path("projects/mine"))
    assert found.value.message == (
        f"projects/mine: file not found (this folder holds a project.yaml: give '.', or run "
        f"from {spec_repo.resolve()})"
    )
    monkeypatch.chdir(spec_repo / "projects")
    with pytest.raises(SpecError, match=r"not found \(from here; run from the repository root"):
        load_project(Path("projects/mine"))
    monkeypatch.chdir(spec_repo)
    with pytest.raises(SpecError) as found:
        load_project(Path("projects/nothere"))
    assert found.value.message == "projects/nothere: file not found"
