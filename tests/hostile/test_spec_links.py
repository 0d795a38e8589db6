"""Spec folders linked out of the repository, run folders linked elsewhere, and text from a
spec file printed as exactly one line (no forged workflow command, no terminal escape)."""

from __future__ import annotations

from pathlib import Path

from tango_ci.spec import load_project
from tests.conftest import MINIMAL_PROJECT as BASE
from tests.conftest import write_project
from tests.hostile.conftest import Tree, tango_here

OUT = "leads out of the repository through a symbolic link; spec files must be real files of "


def _move_out(folder: Path, elsewhere: Path) -> None:
    """Move ``folder`` out of the repository and leave a link to it in its place."""
    folder.rename(elsewhere)
    folder.symlink_to(elsewhere, target_is_directory=True)


def test_a_linked_projects_folder_is_refused(spec_repo: Path, tmp_path: Path) -> None:
    write_project(spec_repo, "demo", BASE)
    _move_out(spec_repo / "projects", tmp_path / "outside-projects")
    result = tango_here("run", "projects/demo", cwd=spec_repo)
    assert result.code == 1
    assert result.error_line == f"projects/demo/project.yaml: projects/ {OUT}the repository"
    assert not (spec_repo / "runs").exists() and not (tmp_path / "runs").exists()
    result = tango_here("validate", cwd=spec_repo)
    assert result.code == 1
    assert result.stdout.splitlines() == [
        f"projects/demo/project.yaml: projects/ {OUT}the repository"
    ]


def test_a_linked_runners_folder_is_refused(spec_repo: Path, tmp_path: Path) -> None:
    write_project(spec_repo, "demo", BASE)
    _move_out(spec_repo / "runners", tmp_path / "outside-runners")
    result = tango_here("validate", "projects/demo", cwd=spec_repo)
    assert result.code == 1
    assert result.stdout.splitlines() == [  # the train runner (by default gpu-server) too
        f"projects/demo/project.yaml:1:1: train.runner: runners/ {OUT}the repository",
        f"projects/demo/project.yaml:9:13: targets[0].runner: runners/ {OUT}the repository",
    ]
    result = tango_here("validate", "runners/local-cpu.yaml", cwd=spec_repo)
    assert result.code == 1
    assert result.stdout.splitlines() == [f"runners/local-cpu.yaml: runners/ {OUT}the repository"]


def test_a_linked_runs_folder_is_refused_before_anything_is_written(
    spec_repo: Path, tmp_path: Path
) -> None:
    write_project(spec_repo, "demo", BASE)
    outside = tmp_path / "outside-runs"
    outside.mkdir()
    (spec_repo / "runs").symlink_to(outside, target_is_directory=True)
    result = tango_here("data", "prepare", "projects/demo", cwd=spec_repo)
    assert result.code == 1
    assert result.error_line == (
        f"runs is a symbolic link (to {outside}); runs are written inside the repository: "
        "remove the link, or set TANGO_RUNS_DIR to write elsewhere"
    )
    assert list(outside.iterdir()) == []


def test_a_study_file_inside_the_repository_is_kept_there(spec_repo: Path) -> None:
    folder = spec_repo / "projects" / "demo"
    folder.mkdir()
    (folder / "project.yaml").write_text(BASE + "search: {storage: 'sqlite:///studies/x.db'}\n")
    spec = load_project(folder / "project.yaml")
    assert spec.search.storage == f"sqlite:///{(folder / 'studies' / 'x.db').resolve()}"


def test_a_forged_workflow_command_stays_inside_its_problem_line(spec_repo: Path) -> None:
    folder = spec_repo / "projects" / "demo"
    folder.mkdir()
    (folder / "project.yaml").write_text(BASE + '"x\\n::error file=README.md::forged :x:": 1\n')
    tree = Tree(spec_repo)
    result = tango_here("validate", cwd=spec_repo, env={"GITHUB_ACTIONS": "true"})
    assert result.code == 1
    field = "x\\n::error file=README.md::forged :x:"
    assert result.stdout.splitlines() == [
        f"projects/demo/project.yaml:11:1: {field}: unknown field '{field}'",
        "::error file=projects/demo/project.yaml,line=11,col=1,title=tango validate::"
        f"{field}: unknown field '{field}'",
    ]
    run = tango_here("run", "projects/demo", cwd=spec_repo)
    assert run.error_line == f"projects/demo/project.yaml:11:1: {field}: unknown field '{field}'"
    assert "❌" not in run.stderr  # ":x:" is text, not an emoji code
    tree.assert_unchanged()


def test_a_folder_named_like_a_runner_file_is_not_a_runner(spec_repo: Path) -> None:
    (spec_repo / "runners" / "rd.yaml").mkdir()
    write_project(spec_repo, "demo", BASE.replace("runner: local-cpu", "runner: rd"))
    result = tango_here("validate", "projects/demo", cwd=spec_repo)
    assert result.code == 1
    [line] = result.stdout.splitlines()
    assert line.startswith("projects/demo/project.yaml:9:13: targets[0].runner: no runner file ")
    assert "local-cpu" in line and ", rd" not in line


def test_a_linked_project_runs_folder_is_refused(spec_repo: Path, tmp_path: Path) -> None:
    write_project(spec_repo, "demo", BASE)
    outside = tmp_path / "outside-runs"
    outside.mkdir()
    (spec_repo / "runs").mkdir()
    (spec_repo / "runs" / "demo").symlink_to(outside, target_is_directory=True)
    result = tango_here("data", "prepare", "projects/demo", cwd=spec_repo)
    assert result.code == 1
    assert result.error_line == "runs/demo is a link; runs stay inside runs"
    assert list(outside.iterdir()) == []


def test_a_linked_projects_folder_is_refused_in_a_checkout_reached_through_a_link(
    spec_repo: Path, tmp_path: Path
) -> None:
    """The checkout itself may lie below a link (/tmp on macOS): a projects/ link out of it is
    still refused, and its own files are not."""
    via = tmp_path / "via"
    via.symlink_to(spec_repo, target_is_directory=True)
    write_project(spec_repo, "demo", BASE)
    assert tango_here("validate", cwd=via).code == 0
    _move_out(spec_repo / "projects", tmp_path / "outside-projects")
    result = tango_here("run", "projects/demo", cwd=via)
    assert result.code == 1
    assert result.error_line == f"projects/demo/project.yaml: projects/ {OUT}the repository"
