"""The `tango` command: parses options, calls tango_ci.api, prints. Nothing else lives here."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tango_ci import __version__, api
from tango_ci.exceptions import TangoError

out = Console()
err = Console(stderr=True)

app = typer.Typer(
    name="tango",
    help="TANGO-CI: a network for each of your devices, from a project file in git.\n\n"
         "Typical use: `tango validate`, then `tango run projects/NAME`.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
runner_app = typer.Typer(help="Describe and check device runners (runners/*.yaml).",
                         no_args_is_help=True)


class _DataGroup(TyperGroup):
    """`tango data PROJECT` is short for `tango data prepare PROJECT`."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["prepare", *args]
        return super().parse_args(ctx, args)


data_app = typer.Typer(cls=_DataGroup, no_args_is_help=True,
                       help="The data stage (`tango data PROJECT`) and synthetic datasets.")
app.add_typer(runner_app, name="runner")
app.add_typer(data_app, name="data")


def _version(value: bool) -> None:
    if value:
        out.print(f"tango-ci {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    traceback: bool = typer.Option(False, "--traceback", hidden=True,
                                   help="Show the Python traceback of errors."),
) -> None:
    """TANGO-CI command line."""


def progress_bar(description: str) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=err, transient=True)


# ----------------------------------------------------------------------------- validate
@app.command()
def validate(
    paths: list[Path] = typer.Argument(None, help="Project or runner files, or folders of them. "
                                                  "Default: every projects/*/project.yaml and "
                                                  "runners/*.yaml of the repository."),
    output_format: str = typer.Option("text", "--format", "-f",
                                      help="text: one `file:line:col: field: message` line per "
                                           "problem. json: a JSON object for other tools."),
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


# ----------------------------------------------------------------------------- runner
@runner_app.command("probe")
def runner_probe(
    name: str = typer.Option("local-cpu", "--name", "-n", help="Runner name (and file name)."),
    output: Optional[Path] = typer.Option(None, "--out", "-o",
                                          help="Where to write the file; '-' prints it. "
                                               "Default: runners/NAME.yaml."),
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


# ----------------------------------------------------------------------------- data
@data_app.command("synth")
def data_synth(
    project: Optional[Path] = typer.Argument(None, help="A project folder whose data.synth "
                                                        "section says what to make."),
    output: Optional[Path] = typer.Option(None, "--out", "-o",
                                          help="Folder to write (without a project)."),
    task: str = typer.Option("classification", help="classification (an ImageFolder) or "
                                                     "detection (a YOLO dataset with data.yaml)"),
    per_class: int = typer.Option(200, "--per-class", min=2, help="Images per class."),
    size: int = typer.Option(64, min=16, max=1024, help="Image side in pixels."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same images."),
    force: bool = typer.Option(False, "--force", help="Replace a folder that holds other data."),
) -> None:
    """Generate synthetic shape images: circles, squares and triangles on noisy backgrounds.

    classification: one shape per image, an ImageFolder. detection: several shapes per image
    with their boxes, a YOLO dataset (data.yaml, images/, labels/).

    With PROJECT, the project's data.synth section gives the parameters and data.path the
    folder. A folder made earlier with the same parameters is left untouched.
    """
    from tango_ci.data.synth import SynthRequest

    if (project is None) == (output is None):
        raise typer.BadParameter("give a PROJECT or --out, not both", param_hint="PROJECT")
    with progress_bar("synthesising") as bar:
        task_id = bar.add_task("synthesising images", total=None)
        update = lambda done, total: bar.update(task_id, completed=done, total=total)  # noqa: E731
        if project is not None:
            result = api.synth_project_data(project, force=force, progress=update)
        else:
            request = SynthRequest(out=output, task=task, images_per_class=per_class,
                                   size=size, seed=seed)
            result = api.synth_data(request, force=force, progress=update)
    counts = ", ".join(f"{k} {v}" for k, v in result["images"].items())
    verb = "wrote" if result["created"] else "up to date:"
    err.print(f"{verb} [bold]{result['path']}[/bold] ({counts})")


# ----------------------------------------------------------------------------- pipeline
_PROJECT = typer.Argument(..., help="Project folder (projects/NAME) or its project.yaml.")
_RUN = typer.Option(None, "--run", help="Run id under runs/NAME/ (default: the latest run).")
_TARGET = typer.Option(None, "--target", "-t", help="Only this target (repeatable); CI matrix "
                                                    "jobs build and measure one target each.")


def _pipeline(project: Path, **kwargs) -> None:
    from tango_ci.cli_progress import RichReporter

    with RichReporter(err) as reporter:
        run_dir = api.run(project, reporter=reporter, **kwargs)
    _print_summary(api.run_summary(run_dir))


def _print_summary(summary: dict) -> None:
    from rich.table import Table

    if summary["targets"]:
        table = Table(title=f"run {summary['run']}", title_justify="left")
        for column in ("target", "engine", "precision", "quality", "p50 ms", "p95 ms",
                       "result"):
            table.add_column(column, justify="right" if "ms" in column or column == "quality"
                             else "left")
        for name, t in summary["targets"].items():
            verdict = ("measured" if t["passed"] is None else "[green]pass[/]" if t["passed"]
                       else f"[red]fail[/] {', '.join(t['failed'])}")
            table.add_row(name, t["engine"], t["precision"],
                          f"{t['quality_name']} {t['accuracy']:.4f}",
                          f"{t['latency']['p50_ms']:.3g}", f"{t['latency']['p95_ms']:.3g}",
                          verdict)
        err.print(table)
    err.print(f"run folder: [bold]{display(summary['path'])}[/]")
    if summary["report"]:
        err.print(f"report: [bold]{display(summary['report'])}[/]")
    if summary["passed"] is False:
        failed = "; ".join(f"{n}: {', '.join(t['failed'])}"
                           for n, t in summary["targets"].items() if not t["passed"])
        raise TangoError(f"gate failed ({failed})")


def display(path: str) -> str:
    from tango_ci.spec import display_path

    return display_path(Path(path))


@app.command("run")
def run_command(
    project: Path = _PROJECT,
    until: Optional[str] = typer.Option(None, "--until", help="Stop after this stage."),
    from_stage: Optional[str] = typer.Option(None, "--from", help="Start at this stage, on "
                                             "the latest run (earlier results are kept)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the latest run: keep its "
                                "finished stages, resume an interrupted one."),
    run_id: Optional[str] = _RUN,
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna storage URL for the "
                                          "search (default: SQLite in the run folder)."),
    bench_seconds: Optional[float] = typer.Option(None, "--bench-seconds", min=1,
                                                  help="Time cap of each latency measurement."),
) -> None:
    """Run the whole pipeline: data, search, train, export, compile, bench, gate, report.

    Each run gets a new folder runs/NAME/RUN-ID (runs/NAME/latest points at it); nothing of an
    earlier run is overwritten. Exits 1 when a target fails its gate.
    """
    _pipeline(project, from_stage=from_stage, until=until, resume=resume, run_id=run_id,
              storage=storage, bench_seconds=bench_seconds)


@data_app.command("prepare")
def data_prepare(project: Path = _PROJECT) -> None:
    """The data stage: start a new run, read and split the images, fingerprint the dataset.

    Synthesises the data first when the project has a data.synth section and the folder is
    missing.
    """
    _pipeline(project, from_stage="data", until="data")


@app.command("search")
def search_command(project: Path = _PROJECT, run_id: Optional[str] = _RUN,
                   storage: Optional[str] = typer.Option(None, "--storage",
                                                         help="Optuna storage URL.")) -> None:
    """Search architectures and hyper-parameters (Optuna).

    Each candidate is built and timed on every target first; one over a budget is rejected
    without training. An interrupted search resumes where it stopped.
    """
    _pipeline(project, from_stage="search", until="search", run_id=run_id, storage=storage)


@app.command("train")
def train_command(project: Path = _PROJECT, run_id: Optional[str] = _RUN) -> None:
    """Train the search's choice fully, with checkpoints; an interrupted run resumes."""
    _pipeline(project, from_stage="train", until="train", run_id=run_id)


@app.command("export")
def export_command(project: Path = _PROJECT, run_id: Optional[str] = _RUN) -> None:
    """Export the trained network to ONNX and check it against PyTorch on real images."""
    _pipeline(project, from_stage="export", until="export", run_id=run_id)


@app.command("compile")
def compile_command(project: Path = _PROJECT, run_id: Optional[str] = _RUN,
                    target: Optional[list[str]] = _TARGET) -> None:
    """Build each target's artifact with its engine and precision."""
    _pipeline(project, from_stage="compile", until="compile", run_id=run_id,
              targets=target or [])


@app.command("bench")
def bench_command(project: Path = _PROJECT, run_id: Optional[str] = _RUN,
                  target: Optional[list[str]] = _TARGET,
                  seconds: Optional[float] = typer.Option(None, "--seconds", min=1,
                                                          help="Time cap per measurement."),
                  repeat: int = typer.Option(1, "--repeat", min=1, max=20,
                                             help="Measure each artifact N times, each in a "
                                                  "fresh process; the median run is reported "
                                                  "with the run-to-run variation.")) -> None:
    """Measure latency, memory, size and accuracy of each artifact on this host."""
    _pipeline(project, from_stage="bench", until="bench", run_id=run_id, targets=target or [],
              bench_seconds=seconds, bench_repeat=repeat)


@app.command("gate")
def gate_command(project: Path = _PROJECT, run_id: Optional[str] = _RUN,
                 target: Optional[list[str]] = _TARGET) -> None:
    """Check every target against its budgets; writes gate/decision.json. Exits 1 on a fail."""
    _pipeline(project, from_stage="gate", until="gate", run_id=run_id, targets=target or [])


@app.command("report")
def report_command(project: Path = _PROJECT, run_id: Optional[str] = _RUN) -> None:
    """Write report.md (for the pull request), report.json and the plots."""
    _pipeline(project, from_stage="report", until="report", run_id=run_id)


@data_app.command("track")
def data_track(project: Path = _PROJECT) -> None:
    """Track the project's data with DVC (`dvc add`) and push it to the DVC remote.

    Commit the pointer file it writes (e.g. projects/NAME/data.dvc): a change of it is what
    makes `tango ci plan` retrain the project, and the pipeline pulls the data from it.
    """
    from tango_ci.dvcstore import track
    from tango_ci.spec import find_repo_root, load_project

    spec = load_project(project)
    pointer = track(find_repo_root(spec.folder), spec.data.resolved)
    err.print(f"tracked {display(str(spec.data.resolved))}; commit {display(str(pointer))} "
              "(and the .gitignore next to it)")


@data_app.command("pull")
def data_pull(project: Path = _PROJECT) -> None:
    """Fetch the project's DVC-tracked data from the DVC remote.

    Pulls every *.dvc pointer in the project folder; the pipeline workflow runs it before
    training.
    """
    from tango_ci.dvcstore import pull_pointers
    from tango_ci.spec import find_repo_root, load_project

    spec = load_project(project)
    pulled = pull_pointers(find_repo_root(spec.folder), spec.folder)
    err.print(f"pulled {len(pulled)} pointer(s): " + (", ".join(display(str(p)) for p in pulled)
                                                       or "none (the data is not under DVC)"))


@data_app.command("check")
def data_check(path: Path = typer.Argument(..., help="A YOLO dataset: its data.yaml or the "
                                                     "folder holding it.")) -> None:
    """Check a YOLO dataset: data.yaml, every image and every label line.

    Prints one `file:line:col: message` line per problem (missing label files, boxes out of
    range, unknown class ids, unreadable images, ...) and exits 1 if there are any.
    """
    stats, problems = api.check_yolo_dataset(path)
    for problem in problems:
        print(problem.format())
    if problems:
        raise typer.Exit(1)
    images, boxes = stats["images"], stats["boxes"]
    err.print(f"[green]valid[/green]: {sum(images.values())} images (train {images['train']}, "
              f"val {images['val']}), {sum(boxes.values())} boxes "
              f"({', '.join(f'{k} {v}' for k, v in stats['per_class'].items())})")


# ----------------------------------------------------------------------------- demo
@app.command()
def demo(project: Path = typer.Argument(Path("projects/example-shapes"),
                                        help="The example project folder.")) -> None:
    """Run the example end to end and say where the report is.

    Synthesises its data, validates every spec file, then runs the whole pipeline.
    """
    with progress_bar("synthesising") as bar:
        task_id = bar.add_task("synthesising images", total=None)
        result = api.synth_project_data(
            project, progress=lambda d, t: bar.update(task_id, completed=d, total=t))
    err.print(f"data: {display(result['path'])} ({sum(result['images'].values())} images, "
              f"{'new' if result['created'] else 'already there'})")
    problems = api.validate([])
    for problem in problems:
        print(problem.format())
    if problems:
        raise TangoError(f"{len(problems)} problem(s) in the repository's spec files")
    err.print("validate: every project and runner file is valid")
    _pipeline(project)


import tango_ci.cli_gitops  # noqa: E402,F401  (registers ci, registry, gitops, pull, ...)


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
            err.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except OSError as exc:  # a read-only or full disk, a folder where a file should be, ...
        if show_traceback:
            raise
        where = f": {display(str(exc.filename))}" if exc.filename else ""
        err.print(f"[red]error:[/red] {exc.strerror or exc}{where}", highlight=False,
                  soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/red]")
        sys.exit(130)
