"""The command line: help everywhere, exit codes, one line per error, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from tango_ci import __version__
from tango_ci.cli import app
from tests.conftest import REPO, write_project

runner = CliRunner()


def _tango(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tango_ci", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _command_paths(command, prefix: tuple[str, ...] = ()) -> list[tuple]:
    paths = [prefix]
    if hasattr(command, "commands"):  # typer vendors its own click
        for name, sub in command.commands.items():
            paths += _command_paths(sub, prefix + (name,))
    return paths


def test_every_command_has_help() -> None:
    paths = _command_paths(typer.main.get_command(app))
    assert ("validate",) in paths and ("runner", "probe") in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Usage:" in result.output
        assert len(result.output.splitlines()) > 5, f"{path} help is too thin"


def test_each_command_is_summed_up_in_one_line() -> None:
    """A group's command list shows each command's first paragraph with its line breaks kept
    (typer's rich mode), so a summary wrapped in the docstring comes out broken mid-sentence."""
    broken = []
    for path in _command_paths(typer.main.get_command(app)):
        command = typer.main.get_command(app)
        for name in path:
            command = command.commands[name]
        first = (command.help or "").strip().split("\n\n")[0]
        if "\n" in first:
            broken.append(" ".join(path))
    assert broken == []


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"tango-ci {__version__}"


def test_validate_repo_exits_zero() -> None:
    result = _tango("validate", cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_bad_file_one_line_exit_one_no_traceback(spec_repo: Path) -> None:
    write_project(spec_repo, "bad", "name: Bad\ntask: classification\n")
    result = _tango("validate", cwd=spec_repo)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "projects/bad/project.yaml:1:1: missing required field 'data'",
        "projects/bad/project.yaml:1:1: missing required field 'targets'",
        "projects/bad/project.yaml:1:7: name: 'Bad' is not a slug: lowercase letters, digits "
        "and dashes, starting and ending with a letter or digit",
    ]
    assert "Traceback" not in result.stderr


def test_github_annotations_only_under_actions(spec_repo: Path) -> None:
    write_project(spec_repo, "bad", "name: x\ntask: classify\n")
    plain = _tango("validate", cwd=spec_repo)
    actions = _tango("validate", cwd=spec_repo, env={"GITHUB_ACTIONS": "true"})
    assert "::error" not in plain.stdout
    annotations = [line for line in actions.stdout.splitlines() if line.startswith("::error")]
    assert len(annotations) == len(plain.stdout.splitlines())
    assert (
        "::error file=projects/bad/project.yaml,line=2,col=7,title=tango validate::task: "
        in actions.stdout
    )


def test_json_format(spec_repo: Path) -> None:
    write_project(spec_repo, "bad", "name: x\ntask: classify\n")
    result = _tango("validate", "--format", "json", cwd=spec_repo)
    data = json.loads(result.stdout)
    assert result.returncode == 1
    assert data["count"] == 3
    assert {p["field"] for p in data["problems"]} == {"", "task"}


def test_usage_error_exits_two(spec_repo: Path) -> None:
    result = _tango("validate", "--format", "xml", cwd=spec_repo)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_tango_error_is_one_red_line_and_traceback_only_on_request(spec_repo: Path) -> None:
    (spec_repo / "runners" / "local-cpu.yaml").write_text("x")
    result = _tango("runner", "probe", cwd=spec_repo)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: runners/local-cpu.yaml exists; pass --force to replace it"
    ]
    debug = _tango("--traceback", "runner", "probe", cwd=spec_repo)
    assert "Traceback" in debug.stderr and debug.returncode == 1
    assert (spec_repo / "runners" / "local-cpu.yaml").read_text() == "x"  # nothing overwritten


def test_cli_import_stays_light() -> None:
    """`tango validate` must not pay for torch, TVM or onnxruntime imports."""
    code = (
        "import sys, tango_ci.cli; heavy = {'torch', 'tvm', 'onnxruntime', 'ultralytics', "
        "'optuna', 'dvc'} & set(sys.modules); print(sorted(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("args", [["data", "synth"], ["data", "synth", "p", "--out", "o"]])
def test_synth_needs_project_or_out(args: list[str], spec_repo: Path) -> None:
    result = _tango(*args, cwd=spec_repo)
    assert result.returncode == 2
    assert "give a PROJECT or --out" in result.stderr


@pytest.mark.parametrize(
    ("args", "project"),
    [
        (["data", "prepare", "projects/x"], "projects/x"),
        (["data", "projects/x"], "projects/x"),
        (["train", "projects/y", "--run", "r1"], "projects/y"),
        (["data", "check", "some/data"], None),
        (["registry", "list"], None),
    ],
)
def test_ctrl_c_names_the_project_to_resume_only_for_pipeline_commands(args, project) -> None:
    import io

    from tango_ci import cli

    saved = cli.err.file
    cli.err.file = io.StringIO()
    try:
        cli._interrupted(args)
        said = cli.err.file.getvalue().strip()
    finally:
        cli.err.file = saved
    if project is None:
        assert said == "interrupted"
    else:
        assert said.endswith(f"continue with: tango run {project} --resume")
