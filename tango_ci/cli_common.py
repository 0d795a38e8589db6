"""What every `tango` command module shares: the consoles, common options, the pipeline runner.

The command modules (:mod:`tango_ci.cli`, ``cli_data``, ``cli_runner``, ``cli_gitops``) import
this one and never each other, except that :mod:`tango_ci.cli` assembles them into the app.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from tango_ci import api
from tango_ci.printable import printable

#: the width of tables written to a log (CI) rather than a terminal: Rich would cut them at 80
#: columns ("onnxrunti…"), and a log has no right edge
LOG_WIDTH = 160


def _width(stream) -> int | None:
    """None (Rich's own choice) on a terminal or with COLUMNS set; else :data:`LOG_WIDTH`."""
    terminal = stream is not None and stream.isatty()
    return None if terminal or os.environ.get("COLUMNS") else LOG_WIDTH


# no emoji codes: ":x:" in a quoted file name or value stays ":x:"
out = Console(emoji=False, width=_width(sys.stdout))
err = Console(stderr=True, emoji=False, width=_width(sys.stderr))


def say(line: str) -> None:
    """A line made of text from outside (versions, labels, file names, records), on stderr as
    one line: never markup, control characters shown as escapes (no forged workflow command)."""
    err.print(printable(line), markup=False, highlight=False, soft_wrap=True)


def quoted(value: object) -> str:
    """Text from outside put into a line that has markup of its own."""
    return escape(printable(str(value)))


def cell(value: object) -> Text:
    """Text from outside as a table cell: one line, never markup."""
    return Text(printable(str(value)))


PROJECT = typer.Argument(..., help="Project folder (projects/NAME) or its project.yaml.")
RUN = typer.Option(None, "--run", help="Run id under runs/NAME/ (default: the latest run).")
TARGET = typer.Option(
    None,
    "--target",
    "-t",
    help="Only this target (repeatable); CI matrix jobs build and measure one target each.",
)
JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")
PUSH = typer.Option(
    True, "--push/--no-push", help="Push the new tags to origin (when the repository has one)."
)


def display(path: str) -> str:
    from tango_ci.spec import display_path

    return display_path(Path(path))


def progress_bar(description: str) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def run_pipeline(project: Path, **kwargs) -> None:
    """Run (part of) the pipeline with progress on stderr, print the summary, and fail as the
    gate says (:func:`tango_ci.api.check_gate`)."""
    from tango_ci.cli_progress import RichReporter

    with RichReporter(err) as reporter:
        run_dir = api.run(project, reporter=reporter, **kwargs)
    summary = api.run_summary(run_dir)
    print_summary(summary)
    api.check_gate(summary)


def print_summary(summary: dict) -> None:
    from rich.table import Table

    if summary["targets"]:
        table = Table(title=f"run {summary['run']}", title_justify="left")
        for column in ("target", "engine", "precision", "quality", "p50 ms", "p95 ms", "result"):
            table.add_column(
                column, justify="right" if "ms" in column or column == "quality" else "left"
            )
        for name, t in summary["targets"].items():
            verdict = (
                "measured"
                if t["passed"] is None
                else "[green]pass[/]"
                if t["passed"]
                else f"[red]fail[/] {', '.join(t['failed'])}"
            )
            table.add_row(
                name,
                t["engine"],
                t["precision"],
                f"{t['quality_name']} {t['quality']:.4f}",
                f"{t['latency']['p50_ms']:.3g}",
                f"{t['latency']['p95_ms']:.3g}",
                verdict,
            )
        err.print(table)
    err.print(f"run folder: [bold]{display(summary['path'])}[/]")
    if summary["report"]:
        err.print(f"report: [bold]{display(summary['report'])}[/]")
