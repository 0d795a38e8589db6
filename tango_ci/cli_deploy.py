"""The operation commands of `tango`: deploy, monitor, logs and label.

Each parses its options, calls :mod:`tango_ci.api` or the part that does the work, and
prints. :mod:`tango_ci.cli` adds ``logs_app`` and ``label_app`` as groups and ``commands``
(deploy, monitor) at the top level.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tango_ci import api
from tango_ci.cli_common import display, say
from tango_ci.exceptions import TangoError

logs_app = typer.Typer(
    no_args_is_help=True,
    help="Prediction logs of served bundles (python -m tango_runtime serve --log FILE).",
)
label_app = typer.Typer(
    no_args_is_help=True,
    help="Labelling: a queue of logged images for Label Studio or CVAT, and their import.",
)
commands = typer.Typer()  # merged into the main app: `tango deploy`, `tango monitor`

SHOWN_REJECTED = 200  # a large export's rejected entries: the first ones, then a count


@commands.command("deploy")
def deploy_command(
    source: str = typer.Argument(
        ...,
        help="A project folder (projects/NAME, with --target) or a registry version "
        "(NAME#prod, NAME@vX.Y.Z).",
    ),
    to: Path = typer.Option(..., "--to", help="New or empty folder to write the bundle to."),
    target: str | None = typer.Option(None, "--target", help="Target (with a project)."),
    run_id: str | None = typer.Option(
        None, "--run", help="Run id (with a project; default: its latest run)."
    ),
) -> None:
    """Write a self-contained bundle a device runs without torch or TANGO-CI.

    The bundle holds the compiled artifact, preprocess.json, postprocess.json (detection:
    detection.deploy's thresholds), labels.json, a manifest with every file's sha256, the
    version and the bench figures, the tango_runtime package and requirements.txt (numpy,
    Pillow, the engine runtime). On the device:

        pip install -r BUNDLE/requirements.txt
        cd BUNDLE && python -m tango_runtime predict IMAGES_OR_FOLDER --out answers.jsonl

    The runtime verifies every file's sha256 before it loads anything.
    """
    if "#" in source or "@" in source:
        if target or run_id:
            raise TangoError("--target and --run go with a project folder, not a version")
        manifest = api.deploy_version(source, to)
    else:
        if not target:
            raise TangoError("with a project folder, name the target: --target NAME")
        manifest = api.deploy_run(Path(source), target, to, run_id)
    say(
        f"bundle of {manifest['project']}/{manifest['target']} ({manifest['version']}, "
        f"{manifest['engine']} {manifest['precision']}): {len(manifest['files'])} files in {to}"
    )
    gate = manifest.get("gate") or {}
    if gate.get("passed") is False:
        say(
            f"warning: target {manifest['target']} failed its gate in run {manifest['run']} "
            f"({', '.join(gate['failed']) or 'see gate/decision.json'}); the bundle records it "
            "(manifest.json 'gate'): deploy it for testing, not to serve"
        )
    elif gate and gate.get("passed") is None:
        say(f"warning: run {manifest['run']} has no gate decision yet: the bundle is unchecked")


@logs_app.command("export")
def logs_export(
    log: Path = typer.Argument(..., help="The serve --log file (rotated files beside it too)."),
    out: Path = typer.Option(..., "--out", help="New JSON-lines file to write."),
    since: float | None = typer.Option(None, "--since", help="Only records from this Unix time."),
) -> None:
    """Write prediction logs as one JSON-lines file to track with DVC (`dvc add OUT`).

    One line per answered request: time, request id, model version and role (champion,
    challenger), latency, outputs and the input's hash and image statistics.
    """
    from tango_ci.deploy.logs import export_logs

    done = export_logs(log, out, since)
    per_version = ", ".join(f"{v}: {n}" for v, n in done["versions"].items()) or "none"
    say(f"{done['records']} records from {len(done['files'])} file(s) in {out} ({per_version})")


@commands.command("monitor")
def monitor_command(
    source: Path = typer.Argument(
        ..., help="A prediction log (serve --log FILE) or a `tango logs export` .jsonl file."
    ),
    bundle: Path = typer.Option(..., "--bundle", help="The served bundle (its reference)."),
    out: Path = typer.Option(Path("drift"), "--out", help="Folder for drift.json, drift.md."),
    window: int = typer.Option(500, "--window", min=20, help="The last N answers compared."),
    alpha: float = typer.Option(0.05, "--alpha", min=1e-6, max=0.5, help="Family-wise level."),
    version: str | None = typer.Option(
        None, "--version", help="Model version (default: the bundle's)."
    ),
) -> None:
    """Compare a served model's recent answers with the reference kept in its bundle.

    Tests (numpy/scipy): MMD with a permutation p-value and per-class KS (Bonferroni) on the
    outputs, the predicted class mix (chi-square) and MMD on the input images' per-channel
    statistics; alpha is shared between them. Writes drift.json, drift.md and plots to OUT.
    Exit codes: 0 no drift, 3 drift, 1 error.
    """
    from tango_ci.monitor import monitor

    result = monitor(source, bundle, out, window=window, alpha=alpha, version=version)
    for name, check in result["checks"].items():
        say(
            f"{name}: p {check['p_value_corrected']:.4g} "
            f"{'DRIFT' if check['drift'] else 'ok'} (threshold {result['threshold']:.4g})"
        )
    for reason in result["skipped"].values():
        say(reason)
    say(f"{'drift' if result['drift'] else 'no drift'}: report in {out / 'drift.md'}")
    if result["drift"]:
        raise typer.Exit(3)


@label_app.command("queue")
def label_queue(
    log: Path = typer.Argument(..., help="The prediction log (serve --log) or an export."),
    bundle: Path = typer.Option(..., "--bundle", help="The served bundle (its labels)."),
    images: Path = typer.Option(..., "--images", help="serve --keep-images folder."),
    budget: int = typer.Option(50, "--budget", "-k", min=1, help="How many images to queue."),
    strategy: str = typer.Option(
        "entropy",
        "--strategy",
        help="entropy, margin, least-confidence, bald (needs --model), coreset or random.",
    ),
    out: Path = typer.Option(..., "--out", help="New folder for the queue."),
    window: int = typer.Option(5000, "--window", min=1, help="Consider the last N answers."),
    model: Path | None = typer.Option(
        None,
        "--model",
        help="For bald: the train folder of the run the bundle was built from "
        "(runs/PROJECT/RUN/train, with model.json and best.pt).",
    ),
    samples: int = typer.Option(20, "--samples", min=2, help="For bald: MC-dropout passes."),
    dropout: float = typer.Option(
        0.5, "--dropout", min=0.0, max=0.95, help="For bald: dropout rate before the head."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of random and of bald's dropout masks."),
) -> None:
    """Queue the logged images most worth labelling for Label Studio and CVAT.

    OUT gets images/, tasks.json (Label Studio tasks with the model's answers as
    pre-annotations: choices, or rectanglelabels in percent) and annotations.xml (CVAT for
    images 1.1). Import the labelled export with `tango label import`.

    The log's answers are enough for every strategy but bald (classification only): it runs
    the trained PyTorch network (--model) on the kept images SAMPLES times with dropout
    before its last linear layer and queues the images whose passes disagree most. Its weights
    are read as plain tensors, never unpickled.
    """
    from tango_ci.labelling import (
        SCORED,
        check_queue,
        kept_image,
        kept_pool,
        require_probabilities,
        write_queue,
    )
    from tango_ci.monitor import read_window
    from tango_ci.runtime import Bundle, BundleError

    if (model is not None) != (strategy in SCORED):
        raise TangoError(
            "--strategy bald needs --model RUN/train"
            if model is None
            else f"--model is read by --strategy bald only, not {strategy}"
        )
    try:
        loaded = Bundle(bundle)
    except BundleError as exc:
        raise TangoError(f"{display(str(bundle))}: {exc}") from None
    records = read_window(log, None, window)
    check_queue(records, display(str(log)))
    scores = None
    if model is not None:
        from tango_ci.contracts import TrainedModel
        from tango_ci.labelling.bald import kept_scores
        from tango_ci.rundir import read_record
        from tango_ci.train.stage import load_network

        require_probabilities(records, strategy)  # before any work: detection is refused
        info = read_record(TrainedModel, model)
        if list(info.classes) != loaded.labels:
            raise TangoError(
                f"{model}: its classes ({', '.join(info.classes)}) are not the bundle's "
                f"({', '.join(loaded.labels)}); pass the train folder of the bundle's run"
            )
        pool = kept_pool(records, images)
        files = [(r["input_hash"], kept_image(images, r)) for r in pool]
        scores = kept_scores(
            load_network(model), files, info.image_size, samples=samples, p=dropout, seed=seed
        )
    done = write_queue(records, images, out, budget, strategy, loaded.labels, seed, scores)
    say(f"{done['queued']} of {done['pool']} images queued by {strategy} in {out}")


@label_app.command("import")
def label_import(
    export: Path = typer.Argument(
        ...,
        help="A Label Studio JSON (or JSON-MIN) export, a CVAT for images 1.1 XML file, or a .zip of one "
        "with its images (CVAT's download).",
    ),
    project: Path = typer.Option(..., "--project", help="The project whose data gets them."),
    eval_fraction: float = typer.Option(
        0.3,
        "--eval-fraction",
        min=0.0,
        max=1.0,
        help="With gate.challenger: this share of each class goes to its new_data folder.",
    ),
) -> None:
    """Add labelled images to the project's data folder, every entry checked.

    Class folders, or YOLO images/train and labels/train; rejected entries are named (the
    first 200). Images are found beside the export or in images/ beside it. Detection takes
    rectangles only: rotated ones become the upright box around them. An image already in
    the data under another class is rejected (an import never relabels). Exit code 1 when
    nothing was imported.

    When the project sets gate.challenger, --eval-fraction of each class's images (0.3) go to
    its new_data folder instead: the next model must beat production on them, so they are
    never trained on. Nothing is written when the file cannot be read. Then
    `tango data track PROJECT` puts the new data under DVC, and its pointer change runs the
    pipeline as any change does.
    """
    from tango_ci.labelling.importing import import_labels
    from tango_ci.plugins import get_task

    spec = api.load_project(project)
    where = get_task(spec.task).labelling(spec)
    if where is None:
        raise TangoError(f"the {spec.task} task takes no label imports")
    data, labels, boxes = where
    challenger = spec.gate.challenger
    held = challenger.new_resolved if challenger is not None else None
    done = import_labels(export, data, labels, boxes, held=held, fraction=eval_fraction)
    rejected = done["rejected"]
    for line in rejected[:SHOWN_REJECTED]:
        say(f"rejected: {line}")
    if len(rejected) > SHOWN_REJECTED:
        say(f"... and {len(rejected) - SHOWN_REJECTED} more rejected")
    kept = f" ({done['held_out']} of them into {display(str(held))} for the gate)" if held else ""
    say(f"{done['imported']} imported into {display(str(data))}{kept}, {len(rejected)} rejected")
    if done["rotated"]:
        say(f"{done['rotated']} rotated boxes were imported as the upright boxes around them")
    if not done["imported"]:
        raise TangoError(
            f"nothing was imported: all {len(rejected)} entries were rejected"
            if rejected
            else f"nothing was imported: {display(str(export))} has no entries"
        )
