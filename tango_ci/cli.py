"""The `tango` command: parses options, calls tango_ci.api, prints. Nothing else lives here.

This module holds the app, `validate`, `run` and the stage commands, `demo` and the entry
point; the other commands are in ``cli_data``, ``cli_runner``, ``cli_gitops`` and ``cli_deploy``, added to the
app below. Shared consoles and options are in ``cli_common``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.markup import escape

from tango_ci import __version__, api
from tango_ci.cli_common import PROJECT, RUN, TARGET, display, err, out, progress_bar, run_pipeline
from tango_ci.cli_data import data_app
from tango_ci.cli_deploy import commands as deploy_commands
from tango_ci.cli_deploy import label_app, logs_app
from tango_ci.cli_gitops import ci_app, commands, gitops_app, registry_app
from tango_ci.cli_runner import runner_app
from tango_ci.exceptions import TangoError
from tango_ci.printable import printable
from tango_ci.rundir import STAGES

STAGE_NAMES = ", ".join(STAGES)

app = typer.Typer(
    name="tango",
    help="TANGO-CI: a network for each of your devices, from a project file in git.\n\n"
    "Typical use: `tango validate`, then `tango run projects/NAME`; the report is "
    "runs/NAME/latest/report/report.md. `tango demo` runs the example end to end.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(commands)  # promote, rollback, pull: top-level commands
app.add_typer(deploy_commands)  # deploy, monitor
app.add_typer(runner_app, name="runner")
app.add_typer(data_app, name="data")
app.add_typer(ci_app, name="ci")
app.add_typer(registry_app, name="registry")
app.add_typer(gitops_app, name="gitops")
app.add_typer(logs_app, name="logs")
app.add_typer(label_app, name="label")


def _version(value: bool) -> None:
    if value:
        out.print(f"tango-ci {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    traceback: bool = typer.Option(
        False, "--traceback", hidden=True, help="Show the Python traceback of errors."
    ),
) -> None:
    """TANGO-CI command line."""


# ----------------------------------------------------------------------------- validate
@app.command()
def validate(
    paths: list[Path] = typer.Argument(
        None,
        help="Project or runner files, or folders of them. "
        "Default: every projects/*/project.yaml and "
        "runners/*.yaml of the repository.",
    ),
    output_format: str = typer.Option(
        "text",
        "--format",
        "-f",
        help="text: one `file:line:col: field: message` line per "
        "problem. json: a JSON object for other tools.",
    ),
) -> None:
    """Check project and runner files against their schemas and each other.

    Exits 1 when any problem is found. Under GitHub Actions it also prints ::error annotations
    so the problems show on the pull request's diff.
    """
    if output_format not in ("text", "json"):
        raise typer.BadParameter("use text or json", param_hint="--format")
    problems = api.validate(paths or [])
    if output_format == "json":
        from tango_ci.spec.problems import problems_to_json

        print(problems_to_json(problems))
    else:
        for problem in problems:
            print(problem.format())
        if os.environ.get("GITHUB_ACTIONS") == "true":
            for problem in problems:
                print(problem.github_annotation())
        if problems:
            err.print(f"[red]{len(problems)} problem(s)[/red]")
        else:
            err.print("[green]all spec files are valid[/green]")
    raise typer.Exit(1 if problems else 0)


# ----------------------------------------------------------------------------- pipeline
@app.command("run")
def run_command(
    project: Path = PROJECT,
    until: str | None = typer.Option(
        None, "--until", help=f"Stop after this stage: {STAGE_NAMES}."
    ),
    from_stage: str | None = typer.Option(
        None,
        "--from",
        help="Start at this stage, on the latest run (earlier results are kept; "
        "a new run holding copies of them when this stage is done there).",
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the latest run: keep its finished stages, resume an interrupted one.",
    ),
    run_id: str | None = RUN,
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="Optuna storage URL for the search (default: SQLite in the run folder).",
    ),
    bench_seconds: float | None = typer.Option(
        None,
        "--bench-seconds",
        min=1,
        help="Time cap of each latency measurement, in seconds (default: 20).",
    ),
) -> None:
    """Run the whole pipeline: data, search, train, export, compile, bench, gate, report.

    Each run gets a new folder runs/NAME/RUN-ID (runs/NAME/latest points at it) with one
    folder per stage; nothing of an earlier run is overwritten. Prints a table of each
    target's result and the report's path (report/report.md). Exits 1 when a target fails
    its gate.

    Examples: `tango run projects/example-shapes`; `tango run projects/NAME --until search`;
    `tango run projects/NAME --resume` after `tango data projects/NAME`.
    """
    run_pipeline(
        project,
        from_stage=from_stage,
        until=until,
        resume=resume,
        run_id=run_id,
        storage=storage,
        bench_seconds=bench_seconds,
    )


@app.command("search")
def search_command(
    project: Path = PROJECT,
    run_id: str | None = RUN,
    storage: str | None = typer.Option(None, "--storage", help="Optuna storage URL."),
) -> None:
    """Search architectures and hyper-parameters (Optuna).

    Each candidate is built and timed on every target first; one over a budget is rejected
    without training. Every architecture is first tried at the project's train settings;
    architectures whose validation accuracy the search cannot tell apart are trained again,
    longer, until one is clear. An interrupted search resumes where it stopped.

    Works on the latest run (after `tango data PROJECT`); writes search/ there (best.json,
    trials.json, pareto.json, the Optuna study). Next: `tango train PROJECT`.
    """
    run_pipeline(project, from_stage="search", until="search", run_id=run_id, storage=storage)


@app.command("train")
def train_command(project: Path = PROJECT, run_id: str | None = RUN) -> None:
    """Train the search's choice fully, with checkpoints; an interrupted run resumes.

    Works on the latest run; writes train/ there (model.json, best.pt, metrics.json, the
    training curves). Next: `tango export PROJECT`.
    """
    run_pipeline(project, from_stage="train", until="train", run_id=run_id)


@app.command("export")
def export_command(project: Path = PROJECT, run_id: str | None = RUN) -> None:
    """Export the trained network to ONNX and check it against PyTorch on real images.

    Works on the latest run; writes export/model.onnx and export/parity.json there. Next:
    `tango compile PROJECT`.
    """
    run_pipeline(project, from_stage="export", until="export", run_id=run_id)


@app.command("specialise")
def specialise_command(
    project: Path = PROJECT, run_id: str | None = RUN, target: list[str] | None = TARGET
) -> None:
    """Pick each target's subnet of the trained supernet (search.strategy: supernet).

    An NSGA-II search over subnets, then a climb from its best through one-step-larger
    neighbours towards the budget's edge (within specialise.time_budget_s). Accuracy comes from
    the supernet's weights after BatchNorm recalibration; latency is measured here only when
    this host passes `tango runner check` for the target's runner, else predicted by the
    runner's latency model (runners/RUNNER/latency/), else refused with one line naming the
    runner and the command that makes a model. The most accurate subnet within every budget is
    confirmed as the bench stage will time it, extracted, optionally fine-tuned
    (specialise.finetune_epochs) and exported with the parity check. Projects searched with
    trials have nothing to specialise.
    """
    run_pipeline(
        project, from_stage="specialise", until="specialise", run_id=run_id, targets=target or []
    )


@app.command("compile")
def compile_command(
    project: Path = PROJECT, run_id: str | None = RUN, target: list[str] | None = TARGET
) -> None:
    """Build each target's artifact with its engine and precision.

    With engine: auto, one artifact per engine and precision the runner offers; the int8 one
    by the fastest quantisation recipe found here within max_accuracy_drop on the validation
    split (optimise_seconds: the search's time budget; every recipe tried is in
    compile/TARGET/recipes.json and the report). Run it on the target's device runner.

    Works on the latest run; writes compile/TARGET/ there (the artifact and artifact.json).
    Next: `tango bench PROJECT`.
    """
    run_pipeline(
        project, from_stage="compile", until="compile", run_id=run_id, targets=target or []
    )


@app.command("bench")
def bench_command(
    project: Path = PROJECT,
    run_id: str | None = RUN,
    target: list[str] | None = TARGET,
    seconds: float | None = typer.Option(
        None, "--seconds", min=1, help="Time cap per measurement, in seconds (default: 20)."
    ),
    repeat: int = typer.Option(
        1,
        "--repeat",
        min=1,
        max=20,
        help="Measure each artifact N times, each in a "
        "fresh process; the median run is reported "
        "with the run-to-run variation.",
    ),
) -> None:
    """Measure latency, memory, size and accuracy of each artifact on this host.

    Latency in a fresh process per artifact; accuracy on the test split the data stage held
    out. Works on the latest run; writes bench/TARGET/metrics.json there and prints a table.
    Next: `tango gate PROJECT`.
    """
    run_pipeline(
        project,
        from_stage="bench",
        until="bench",
        run_id=run_id,
        targets=target or [],
        bench_seconds=seconds,
        bench_repeat=repeat,
    )


@app.command("gate")
def gate_command(
    project: Path = PROJECT, run_id: str | None = RUN, target: list[str] | None = TARGET
) -> None:
    """Check every target against its budgets; writes gate/decision.json. Exits 1 on a fail.

    Works on the latest run. Next: `tango report PROJECT`.
    """
    run_pipeline(project, from_stage="gate", until="gate", run_id=run_id, targets=target or [])


@app.command("report")
def report_command(project: Path = PROJECT, run_id: str | None = RUN) -> None:
    """Write report.md (for the pull request), report.json and the plots.

    Works on the latest run; writes them to report/ there and prints the report's path.
    """
    run_pipeline(project, from_stage="report", until="report", run_id=run_id)


# ----------------------------------------------------------------------------- demo
@app.command()
def demo(
    project: Path = typer.Argument(
        Path("projects/example-shapes"), help="The example project folder."
    ),
) -> None:
    """Run the example end to end and say where the report is.

    Synthesises its data (data.synth of its project.yaml), validates every spec file, then
    runs the whole pipeline as `tango run` does (a few minutes on a 2-core CPU). `make demo`
    runs it.
    """
    with progress_bar("synthesising") as bar:
        task_id = bar.add_task("synthesising images", total=None)
        result = api.synth_project_data(
            project, progress=lambda d, t: bar.update(task_id, completed=d, total=t)
        )
    err.print(
        f"data: {display(result['path'])} ({sum(result['images'].values())} images, "
        f"{'new' if result['created'] else 'already there'})"
    )
    problems = api.validate([])
    for problem in problems:
        print(problem.format())
    if problems:
        raise TangoError(f"{len(problems)} problem(s) in the repository's spec files")
    err.print("validate: every project and runner file is valid")
    run_pipeline(project)


# ----------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> None:
    """Console entry point: TangoError becomes one red line and exit code 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in args
    try:
        app(args=args, prog_name="tango", standalone_mode=True)
    except TangoError as exc:
        if show_traceback:
            raise
        from tango_ci.exceptions import SpecError

        if isinstance(exc, SpecError) and len(exc.problems) > 1:
            for problem in exc.problems:
                print(problem.format())
            err.print(f"[red]error:[/red] {len(exc.problems)} problems", highlight=False)
        else:
            # messages quote files, records and names from outside: never read them as markup
            err.print(
                f"[red]error:[/red] {escape(printable(exc.message))}",
                highlight=False,
                soft_wrap=True,
            )
        sys.exit(1)
    except OSError as exc:  # a read-only or full disk, a folder where a file should be, ...
        if show_traceback:
            raise
        where = f": {display(str(exc.filename))}" if exc.filename else ""
        err.print(
            f"[red]error:[/red] {escape(printable(str(exc.strerror or exc) + where))}",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
    except KeyboardInterrupt:
        _interrupted(args)
        sys.exit(130)
    except SystemExit as exc:  # typer turns Ctrl-C into exit code 130, silently
        if exc.code == 130:
            _interrupted(args)
        raise


def _interrupted(args: list[str]) -> None:
    """One line for Ctrl-C: for a pipeline command, how to go on from what was kept."""
    words = [a for a in args if not a.startswith("-")]
    if words[:2] == ["data", "prepare"]:  # `tango data PROJECT` written out
        words = ["data", *words[2:]]
    if (
        len(words) >= 2
        and (words[0] == "run" or words[0] in STAGES)
        and words[1] not in {c.name for c in data_app.registered_commands}  # not a project
    ):
        project = escape(printable(words[1]))
        err.print(
            "[red]interrupted[/red]: finished stages, trials and checkpoints are kept; "
            f"continue with: tango run {project} --resume",
            highlight=False,
            soft_wrap=True,
        )
    else:
        err.print("[red]interrupted[/red]")
