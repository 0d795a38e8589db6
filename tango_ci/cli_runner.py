"""`tango runner`: describe this host as a runner file, and check a runner file against it.

Each command parses its options, calls :mod:`tango_ci.api` and prints.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tango_ci import api
from tango_ci.cli_common import err
from tango_ci.exceptions import TangoError

runner_app = typer.Typer(
    help="Describe and check device runners (runners/*.yaml).", no_args_is_help=True
)


@runner_app.command("probe")
def runner_probe(
    name: str = typer.Option("local-cpu", "--name", "-n", help="Runner name (and file name)."),
    output: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Where to write the file; '-' prints it. Default: runners/NAME.yaml.",
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
) -> None:
    """Inspect this host (CPU, memory, engines that import, TVM target, NVIDIA GPU) and write
    a runner file for it."""
    target = None if output == Path("-") else (output or Path("runners") / f"{name}.yaml")
    runner, missing, text = api.probe_runner(name, target, force=force)
    if target is None:
        print(text, end="")
    else:
        err.print(f"wrote [bold]{target}[/bold]")
    engines = ", ".join(f"{e['name']} {e.get('version', '')}".strip() for e in runner["engines"])
    err.print(f"engines: {engines or 'none'}")
    for engine, reason in missing.items():
        err.print(f"[yellow]not available:[/yellow] {engine} ({reason})")


@runner_app.command("check")
def runner_check(
    path: Path = typer.Argument(..., help="runners/<device>.yaml to compare with this host."),
) -> None:
    """Compare a runner file with this host; exit 1 on a mismatch.

    Checks the architecture, the accelerator, and each engine: importable, of the declared
    version, with its execution providers. A mislabelled runner would produce benchmark
    numbers for a device it is not; the compile-bench job runs this first.
    """
    findings = api.check_runner(path)
    style = {"ok": "green", "warning": "yellow", "error": "red"}
    for finding in findings:
        err.print(
            f"[{style[finding.level]}]{finding.level:>7}[/] {finding.what}: {finding.message}",
            highlight=False,
        )
    errors = [f for f in findings if f.level == "error"]
    if errors:
        raise TangoError(
            f"{path}: this host does not match the runner file "
            f"({len(errors)} mismatch(es): {', '.join(f.what for f in errors)})"
        )
    err.print(f"{path}: this host matches")
