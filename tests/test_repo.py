"""The promises of the README and CI: two commands, and .ci/run is `make test`."""

from __future__ import annotations

from tests.conftest import REPO


def test_ci_run_is_make_test_and_nothing_else() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    commands = [line for line in lines if not line.startswith(("set ", "cd "))]
    assert commands == ["make test"]


def test_readme_shows_the_two_commands_first() -> None:
    text = (REPO / "README.md").read_text()
    first_block = text.split("```")[1]
    assert [line for line in first_block.splitlines() if line.strip()][-2:] == [
        "make demo",
        "make test",
    ]


def test_layout() -> None:
    for name in (
        ".github/workflows",
        "tango_ci",
        "projects",
        "schemas",
        "runners",
        "tests",
        "benchmarks",
        "pyproject.toml",
        "Makefile",
        "README.md",
        ".ci/run",
    ):
        assert (REPO / name).exists(), name
