"""Project names are unique; numbers are read as YAML 1.2 reads them."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import MINIMAL_PROJECT
from tests.hostile.conftest import tango


def test_a_second_project_of_the_same_name_is_refused(spec_repo: Path) -> None:
    for folder in ("first", "second"):
        (spec_repo / "projects" / folder).mkdir()
        (spec_repo / "projects" / folder / "project.yaml").write_text(MINIMAL_PROJECT)
    result = tango("validate", cwd=spec_repo)
    assert result.code == 1
    assert result.stdout.splitlines() == [
        "projects/second/project.yaml:1:7: name: 'demo' is also the name of "
        "projects/first/project.yaml; runs, registry tags and reports are kept by project name"
    ]
    renamed = MINIMAL_PROJECT.replace("name: demo", "name: other")
    (spec_repo / "projects" / "second" / "project.yaml").write_text(renamed)
    assert tango("validate", cwd=spec_repo).code == 0


def test_numbers_are_read_as_yaml_1_2_reads_them(spec_repo: Path) -> None:
    """PyYAML's YAML 1.1 read ``1e-3`` as text (refused as "expected number") and ``1:30`` as
    base 60 (90 seconds, silently)."""
    from tango_ci.spec import load_project

    folder = spec_repo / "projects" / "demo"
    folder.mkdir()
    (folder / "project.yaml").write_text(MINIMAL_PROJECT + "train: {lr: 1e-3}\n")
    assert load_project(folder / "project.yaml").train.lr == 0.001
    (folder / "project.yaml").write_text(MINIMAL_PROJECT + "train: {epochs: 010}\n")
    result = tango("validate", cwd=spec_repo)  # not octal 8, as PyYAML's int constructor reads it
    assert result.stdout.splitlines() == [
        "projects/demo/project.yaml:11:17: train.epochs: expected integer, got string '010'"
    ]
    (folder / "project.yaml").write_text(MINIMAL_PROJECT + "search: {timeout_s: 1:30}\n")
    result = tango("validate", cwd=spec_repo)
    assert result.code == 1
    assert result.stdout.splitlines() == [
        "projects/demo/project.yaml:11:21: search.timeout_s: expected number or null, got "
        "string '1:30'"
    ]
