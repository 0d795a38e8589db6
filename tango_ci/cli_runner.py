"""`tango runner`: describe this host as a runner file, and check a runner file against it.

Each command parses its options, calls :mod:`tango_ci.api` and prints.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tango_ci import api
from tango_ci.cli_common import err
from tango_ci.exceptions import TangoError
from tango_ci.profiling.profile import ProfileOptions

DEFAULT_PROFILE = ProfileOptions()

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
    """Inspect this host and write a runner file for it.

    Reads the CPU, memory, engines that import, the TVM target and any NVIDIA GPU. An existing
    file is kept unless --force. A project's target then names it as its runner.

    Example: tango runner probe --name lab-pc   (writes runners/lab-pc.yaml)
    """
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


@runner_app.command("profile")
def runner_profile(
    path: Path = typer.Argument(..., help="runners/<device>.yaml; this host must be that device."),
    engine: list[str] = typer.Option(
        [], "--engine", "-e", help="Only this engine (repeatable). Default: every engine."
    ),
    precision: list[str] = typer.Option(
        [], "--precision", "-p", help="Only this precision (repeatable). Default: every one."
    ),
    networks: int = typer.Option(
        DEFAULT_PROFILE.networks, help="Whole networks to time (30% are held out)."
    ),
    blocks: int = typer.Option(
        DEFAULT_PROFILE.blocks, help="Isolated blocks to time (for the per-block table)."
    ),
    batch: list[int] = typer.Option([1], "--batch", "-b", help="Batch sizes (repeatable)."),
    time_budget: float = typer.Option(
        DEFAULT_PROFILE.time_budget_s,
        "--time-budget",
        help="Stop measuring after this many seconds (then fit).",
    ),
    seed: int = typer.Option(
        DEFAULT_PROFILE.seed, help="Seed of the sample design (same seed: same networks)."
    ),
    yolo: bool = typer.Option(True, "--yolo/--no-yolo", help="Include YOLO detection scales."),
    noise_networks: int = typer.Option(
        DEFAULT_PROFILE.noise_networks,
        min=0,
        help="Held-out networks timed again in a fresh process: how far this device's own "
        "timings move, the floor under any model's error (0: skip).",
    ),
) -> None:
    """Time sample networks on this device and fit a latency model per engine and precision.

    A designed sample of blocks and whole networks, for every engine and precision the runner
    offers.

    Writes runners/<device>/latency/<engine>-<precision>.json (the model, with host facts,
    tool versions, sample counts and held-out error), the raw measurements beside it and
    report.md with a scatter per model. Commit them: searches on other machines then predict
    this device's latency instead of timing the wrong host. Refused unless `tango runner
    check` passes here. Interrupted (or out of time)? Run it again: it continues from what
    was measured.

    Example: tango runner profile runners/raspberry-pi-5.yaml --time-budget 1800
    """
    from tango_ci.cli_progress import RichReporter

    options = ProfileOptions(
        engines=tuple(engine),
        precisions=tuple(precision),
        blocks=blocks,
        networks=networks,
        batches=tuple(batch),
        time_budget_s=time_budget,
        seed=seed,
        with_yolo=yolo,
        noise_networks=noise_networks,
    )
    with RichReporter(err) as reporter:
        outcome = api.profile_runner(path, options, reporter)
    for fitted in outcome.fitted:
        held = fitted.model.metadata["heldout"]
        flops = fitted.model.metadata["heldout_flops_linear"]
        err.print(
            f"{fitted.engine} {fitted.precision}: [bold]{fitted.model.method}[/bold], "
            f"held out {held['count']}: within ±10% {held['within_10']:.0%}, MAPE "
            f"{held['mape']:.1%} (FLOPs-linear {flops['within_10']:.0%}, {flops['mape']:.1%}"
            f"{_again(fitted.model.metadata.get('noise_floor'))}) -> {fitted.path}",
            highlight=False,
        )
    err.print(f"report: {outcome.report}")


def _again(found: dict | None) -> str:
    return f"; timed again: {found['within_10']:.0%}" if found else ""


@runner_app.command("latency-report")
def runner_latency_report(
    runner: str = typer.Argument(..., help="Runner name (or runners/<name>.yaml)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """How the runner's latency models fare against measurements on the device.

    Their held-out error when profiled, and every later bench measurement on the device
    against what the model predicted (registry versions and this checkout's runs). A growing
    error means the device or its software changed: profile it again."""
    import json

    from rich.table import Table

    report = api.latency_report(runner)
    if as_json:
        print(json.dumps(report, indent=2, default=str))
        return
    if not report["models"]:
        err.print(
            f"runner {report['runner']} has no latency model; make one on the device with "
            f"`tango runner profile runners/{report['runner']}.yaml`"
        )
    table = Table(title=f"latency models of {report['runner']}")
    for column in ("engine", "precision", "method", "held out", "within ±10%", "MAPE"):
        table.add_column(column)
    for model in report["models"]:
        held = model["heldout"]
        table.add_row(
            model["engine"],
            model["precision"],
            model["method"],
            str(held.get("count", "")),
            f"{held.get('within_10', 0):.0%}",
            f"{held.get('mape', 0):.1%}",
        )
    err.print(table)
    if not report["observations"]:
        err.print("no bench measurement on this runner has been compared with a model yet")
        return
    drift = Table(title="bench measurements against the model's prediction")
    for column in (
        "engine",
        "precision",
        "measured",
        "mean error",
        "MAPE",
        "within ±10%",
        "latest",
    ):
        drift.add_column(column)
    for row in report["summary"]:
        drift.add_row(
            row["engine"],
            row["precision"],
            str(row["count"]),
            f"{row['mean_error']:+.1%}",
            f"{row['mape']:.1%}",
            f"{row['within_10']:.0%}",
            f"{row['latest_error']:+.1%}",
        )
    err.print(drift)
