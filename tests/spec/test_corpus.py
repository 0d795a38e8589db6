"""Every broken spec file gives exactly one expected line, with the right line and column."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tango_ci import api
from tango_ci.spec._yaml import MAX_BYTES
from tests.conftest import MINIMAL_PROJECT, write_project

CORPUS = Path(__file__).parent / "corpus"
EXPECTED: dict[str, str] = yaml.safe_load((CORPUS / "expected.yaml").read_text())
PROJECT_CASES = sorted(p.stem for p in (CORPUS / "projects").glob("*.yaml"))
RUNNER_CASES = sorted(p.stem for p in (CORPUS / "runners").glob("*.yaml"))


@pytest.fixture
def corpus_repo(spec_repo: Path) -> Path:
    for case in RUNNER_CASES:
        shutil.copy(CORPUS / "runners" / f"{case}.yaml", spec_repo / "runners")
    for case in PROJECT_CASES:
        write_project(spec_repo, case, (CORPUS / "projects" / f"{case}.yaml").read_text())
    (spec_repo / "projects" / "data-not-a-folder" / "data-missing.yaml").write_text("x: 1\n")
    return spec_repo


def test_corpus_is_large_and_fully_specified() -> None:
    cases = PROJECT_CASES + RUNNER_CASES
    assert len(cases) >= 25
    assert sorted(EXPECTED) == sorted(cases)


@pytest.mark.parametrize("case", PROJECT_CASES)
def test_broken_project(corpus_repo: Path, case: str) -> None:
    path = Path("projects") / case / "project.yaml"
    problems = api.validate([path], repo_root=corpus_repo)
    assert [p.format() for p in problems] == [f"{path}:{EXPECTED[case]}"]


@pytest.mark.parametrize("case", RUNNER_CASES)
def test_broken_runner(corpus_repo: Path, case: str) -> None:
    path = Path("runners") / f"{case}.yaml"
    problems = api.validate([path], repo_root=corpus_repo)
    assert [p.format() for p in problems] == [f"{path}:{EXPECTED[case]}"]


def _only_line(root: Path, path: Path) -> str:
    problems = api.validate([path], repo_root=root)
    assert len(problems) == 1, problems
    return problems[0].format()


def test_non_utf8_bytes_are_located(spec_repo: Path) -> None:
    path = write_project(spec_repo, "latin1")
    path.write_bytes(b"name: demo\ndescription: caf\xe9 au lait\n")
    assert _only_line(spec_repo, path.relative_to(spec_repo)) == (
        "projects/latin1/project.yaml:2:17: not UTF-8 text (byte 0xe9)"
    )


def test_huge_file_is_refused_before_parsing(spec_repo: Path) -> None:
    path = write_project(spec_repo, "huge")
    path.write_text("description: '" + "x" * MAX_BYTES + "'\n")
    assert _only_line(spec_repo, path.relative_to(spec_repo)) == (
        f"projects/huge/project.yaml:1:1: file is {MAX_BYTES + 16} bytes, larger than the "
        f"{MAX_BYTES} allowed"
    )


def test_directory_instead_of_file(spec_repo: Path) -> None:
    (spec_repo / "projects" / "dir" / "project.yaml").mkdir(parents=True)
    assert _only_line(spec_repo, Path("projects/dir/project.yaml")) == (
        "projects/dir/project.yaml: is a directory, expected a YAML file"
    )


def test_missing_file(spec_repo: Path) -> None:
    assert _only_line(spec_repo, Path("projects/none/project.yaml")) == (
        "projects/none/project.yaml: file not found"
    )


def test_symlink_out_of_the_repository(spec_repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "a").mkdir(parents=True)
    path = write_project(
        spec_repo,
        "linked",
        MINIMAL_PROJECT.replace("  synth: {images_per_class: 10, size: 16}\n", ""),
    )
    (path.parent / "data").symlink_to(outside)
    assert _only_line(spec_repo, path.relative_to(spec_repo)) == (
        f"projects/linked/project.yaml:4:9: data.path: 'data' is a symbolic link out of the "
        f"repository (to {outside}); use a path inside it"
    )


def test_several_problems_are_all_reported_in_line_order(spec_repo: Path) -> None:
    path = write_project(
        spec_repo,
        "many",
        MINIMAL_PROJECT.replace("demo", "Bad Name").replace(
            "engine: onnxruntime", "engine: onnx\n    batch: -1"
        ),
    )
    lines = [p.format() for p in api.validate([path.relative_to(spec_repo)], repo_root=spec_repo)]
    assert [line.split(": ")[1] for line in lines] == [
        "name",
        "targets[0].engine",
        "targets[0].batch",
    ]
    assert [int(line.split(":")[1]) for line in lines] == [1, 10, 11]
