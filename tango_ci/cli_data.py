"""`tango data`: the data stage, synthetic datasets, DVC tracking of a project's data.

Each command parses its options, calls :mod:`tango_ci.api` and prints.
"""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperGroup

from tango_ci import api
from tango_ci.cli_common import PROJECT, display, err, progress_bar, quoted, run_pipeline, say
from tango_ci.data.synth import DEFAULT_KIND, KINDS
from tango_ci.plugins import TASKS

MAX_PRINTED_PROBLEMS = 200
MAX_PRINTED_CLASSES = 50


class _DataGroup(TyperGroup):
    """`tango data PROJECT` is short for `tango data prepare PROJECT`."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["prepare", *args]
        return super().parse_args(ctx, args)


data_app = typer.Typer(
    cls=_DataGroup,
    no_args_is_help=True,
    help="The data stage (`tango data PROJECT`, short for `tango data prepare PROJECT`), "
    "synthetic datasets, DVC tracking, and a YOLO dataset check.",
)


@data_app.command("synth")
def data_synth(
    project: Path | None = typer.Argument(
        None, help="A project folder whose data.synth section says what to make."
    ),
    output: Path | None = typer.Option(
        None, "--out", "-o", help="Folder to write (without a project)."
    ),
    task: str = typer.Option(
        TASKS.builtin_names()[0],
        help="The task to make data for: "
        + ", ".join(f"{name} ({', '.join(TASKS.get(name).data_formats)})" for name in TASKS.names())
        + ".",
    ),
    kind: str = typer.Option(
        DEFAULT_KIND,
        help="The generator: "
        + "; ".join(f"{name}: {generator.summary}" for name, generator in KINDS.items())
        + ".",
    ),
    per_class: int = typer.Option(200, "--per-class", min=2, help="Images per class."),
    size: int = typer.Option(64, min=16, max=1024, help="Image side in pixels."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same images."),
    force: bool = typer.Option(False, "--force", help="Replace a folder that holds other data."),
) -> None:
    """Generate synthetic shape images (--kind: shapes, the default, or the harder glyphs).

    classification: one shape per image, an ImageFolder. detection (shapes only): several
    shapes per image with their boxes, a YOLO dataset (data.yaml, images/, labels/).

    With PROJECT, the project's data.synth section gives the parameters and data.path the
    folder. A folder made earlier with the same parameters is left untouched.

    Examples: tango data synth projects/example-shapes;
    tango data synth --out /tmp/shapes --per-class 20 --size 32
    """
    if (project is None) == (output is None):
        raise typer.BadParameter("give a PROJECT or --out, not both", param_hint="PROJECT")
    with progress_bar("synthesising") as bar:
        task_id = bar.add_task("synthesising images", total=None)
        update = lambda done, total: bar.update(task_id, completed=done, total=total)  # noqa: E731
        if project is not None:
            result = api.synth_project_data(project, force=force, progress=update)
        else:
            assert output is not None  # one of the two, checked above
            request = api.SynthRequest(
                out=output,
                task=task,
                images_per_class=per_class,
                size=size,
                seed=seed,
                kind=kind,
            )
            result = api.synth_data(request, force=force, progress=update)
    counts = ", ".join(f"{k} {v}" for k, v in result["images"].items())
    verb = "wrote" if result["created"] else "up to date:"
    err.print(f"{verb} [bold]{result['path']}[/bold] ({counts})")


@data_app.command("prepare")
def data_prepare(project: Path = PROJECT) -> None:
    """The data stage: start a new run, read and split the images, fingerprint the dataset.

    Synthesises the data first when the project has a data.synth section and the folder is
    missing. Unreadable images are listed with the reason (an error when more than
    data.max_bad_fraction); other files, images in subfolders of a class folder and the same
    image in two classes are warned of. Writes data/ in the new run (train.npz, val.npz,
    test.npz, classes.json, files.json, bad.json).

    Example: tango data projects/NAME, then `tango run projects/NAME --resume` (or
    `tango search projects/NAME`).
    """
    run_pipeline(project, from_stage="data", until="data")


@data_app.command("track")
def data_track(project: Path = PROJECT) -> None:
    """Track the project's data with DVC (`dvc add`) and push it to the DVC remote.

    With gate.challenger, its new-data and holdout folders too.

    Commit the pointer file it writes (e.g. projects/NAME/data.dvc): a change of it is what
    makes `tango ci plan` retrain the project, and the pipeline pulls the data from it.
    """
    for tracked in api.track_data(project):
        if tracked.changed:
            written = " and ".join(display(str(path)) for path in tracked.changed)
            say(f"tracked {display(str(tracked.data))}; commit {written}")
        else:
            say(
                f"tracked {display(str(tracked.data))}: unchanged, its pointer "
                f"{display(str(tracked.pointer))} is as before (nothing new to commit)"
            )


@data_app.command("pull")
def data_pull(project: Path = PROJECT) -> None:
    """Fetch the project's DVC-tracked data from the DVC remote.

    Pulls every *.dvc pointer in the project folder; the pipeline workflow runs it before
    training.
    """
    pulled = api.pull_data(project)
    err.print(
        f"pulled {len(pulled)} pointer(s): "
        + (", ".join(display(str(p)) for p in pulled) or "none (the data is not under DVC)")
    )


@data_app.command("check")
def data_check(
    path: Path = typer.Argument(
        ..., help="A YOLO dataset: its data.yaml or the folder holding it."
    ),
    max_bad_fraction: float = typer.Option(
        0.0,
        "--max-bad-fraction",
        min=0.0,
        max=1.0,
        help="Share of images that may be unreadable and are left out with a warning "
        "instead of refused (the data stage allows "
        "data.max_bad_fraction, 0.01 unless the project says).",
    ),
) -> None:
    """Check a YOLO dataset: data.yaml, every image and every label line.

    For detection datasets only; an image-folder (classification) project is checked by its
    data stage, `tango data PROJECT`.

    Prints one `file:line:col: message` line per problem (boxes out of range, unknown class
    ids, unreadable images, ...; the first 200, then how many more) and exits 1 if there are
    any. Warns of what ultralytics mends when it trains and is mended the same way here
    (images without a label file, boxes past the image's edge or of no area, repeated lines)
    and of images identical across splits (a test image the model trained on scores too well).
    """
    stats, problems = api.check_yolo_dataset(path, MAX_PRINTED_PROBLEMS, max_bad_fraction)
    for problem in problems:  # the last says how many in all, when there were more
        print(problem.format())
    for warning in stats.get("warnings", []):
        err.print(f"[yellow]warning[/yellow]: {quoted(warning)}")
    if problems:
        raise typer.Exit(1)
    images, boxes = stats["images"], stats["boxes"]
    per_class = list(stats["per_class"].items())
    # class names come from data.yaml: never markup, never a control character, never all
    # ten thousand on one line
    shown = ", ".join(f"{quoted(name)} {count}" for name, count in per_class[:MAX_PRINTED_CLASSES])
    if len(per_class) > MAX_PRINTED_CLASSES:
        shown += f", ... and {len(per_class) - MAX_PRINTED_CLASSES} more classes"
    err.print(
        f"[green]valid[/green]: {sum(images.values())} images "
        f"({', '.join(f'{k} {v}' for k, v in images.items())}), {sum(boxes.values())} boxes "
        f"({shown})",
        soft_wrap=True,  # a name's spaces never start a line of their own (a forged ::error)
    )
