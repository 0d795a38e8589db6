"""Device runners' latency models: profile this host as a runner, and how its models fare."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tango_ci.exceptions import TangoError
from tango_ci.latency.records import is_held_out
from tango_ci.profiling.fit import FittedPair, fit_pair, usable
from tango_ci.profiling.noise import floor, remeasure, verdict
from tango_ci.profiling.profile import ProfileOptions, latency_folder, run_profile
from tango_ci.progress import SILENT, Reporter


@dataclass(frozen=True)
class ProfileOutcome:
    runner: str
    fitted: list[FittedPair]
    report: Path
    measured: dict[str, int]  # pair -> records


def profile_runner(
    path: Path, options: ProfileOptions = ProfileOptions(), reporter: Reporter = SILENT
) -> ProfileOutcome:
    """Measure the designed sample on this host (which must pass ``tango runner check`` for
    the runner file ``path``), fit each engine and precision's latency model and write it with
    its report under ``runners/<runner>/latency/``."""
    from tango_ci.bench.latency import host_facts
    from tango_ci.profiling.report import write_report
    from tango_ci.runners.latency_source import runner_here
    from tango_ci.spec import load_runner

    runner = load_runner(Path(path))
    here, why = runner_here(runner)
    if not here:
        raise TangoError(
            f"{path}: this host is not runner {runner.name} ({why}); profile on the device "
            "itself, where `tango runner check` passes"
        )
    records = run_profile(runner, options, reporter)
    host = host_facts(runner.threads)
    fitted = []
    for (engine, precision), found in records.items():
        networks, _, _ = usable(found, host["cpu"], engine, runner.threads)
        held = [r for r in networks if is_held_out(r["id"])]
        spread = floor(remeasure(runner, engine, precision, held, options.noise_networks, reporter))
        if (warning := verdict(engine, precision, spread)) is not None:
            reporter.log(warning)
        fitted.append(fit_pair(runner, engine, precision, found, host, options.seed, spread))
    report = write_report(latency_folder(runner), runner.name, fitted)
    return ProfileOutcome(
        runner.name, fitted, report, {f"{e}-{p}": len(r) for (e, p), r in records.items()}
    )


def _runner_file(runner: str | Path, root: Path) -> Path:
    path = Path(runner)
    if path.suffix in (".yaml", ".yml"):
        return path
    return root / "runners" / f"{runner}.yaml"


def latency_report(runner: str | Path, repo_root: Path | None = None) -> dict:
    """How the runner's latency models fare: each model's held-out errors from its profile,
    and every later comparison with a bench measurement on the device (the registry's
    versions and this checkout's runs), oldest first, summarised per engine and precision."""
    from tango_ci.latency import load_model
    from tango_ci.spec import find_repo_root, load_runner

    root = Path(repo_root) if repo_root is not None else find_repo_root(Path.cwd())
    spec = load_runner(_runner_file(runner, root))
    folder = latency_folder(spec)
    models = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        model = load_model(path)
        models.append(
            {
                "engine": model.engine,
                "precision": model.precision,
                "method": model.method,
                "file": str(path),
                "heldout": model.metadata.get("heldout", {}),
                "samples": model.metadata.get("samples", {}),
            }
        )
    observations = _registry_observations(root, spec.name) + _run_observations(root, spec.name)
    return {
        "runner": spec.name,
        "models": models,
        "observations": observations,
        "summary": _summarise(observations),
    }


def _registry_observations(root: Path, runner: str) -> list[dict]:
    from tango_ci.registry import Registry

    if not (root / ".git").exists():
        return []
    registry = Registry(root)
    found = []
    for row in registry.overview():
        for version in reversed(registry.versions(row["name"])):
            record = version["record"] or {}
            error = (record.get("metrics") or {}).get("latency_prediction_error")
            if record.get("runner") == runner and isinstance(error, (int, float)):
                found.append(
                    {
                        "where": f"{row['name']}@{version['version']}",
                        "when": version["created_at"],
                        "engine": record.get("engine"),
                        "precision": record.get("precision"),
                        "measured_p50_ms": record["metrics"].get("p50_ms"),
                        "error": float(error),
                    }
                )
    return found


def _run_observations(root: Path, runner: str) -> list[dict]:
    from tango_ci.registry.records import check_metrics, read_json_file

    found = []
    for path in sorted((root / "runs").glob("*/*/bench/*/metrics.json")):
        if path.parents[2].is_symlink():  # runs/<project>/latest: the same run again
            continue
        if path.parents[2].name.startswith("."):  # a fork's copy a kill left half made
            continue
        try:
            metrics = check_metrics(read_json_file(path, str(path)), str(path))
        except TangoError:
            continue  # a broken run folder is not this report's business
        error = metrics.get("prediction_error")
        if metrics.get("runner") == runner and isinstance(error, (int, float)):
            found.append(
                {
                    "where": str(path.relative_to(root)),
                    "when": datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(),
                    "engine": metrics["engine"],
                    "precision": metrics["precision"],
                    "measured_p50_ms": metrics["latency"]["p50_ms"],
                    "error": float(error),
                }
            )
    return sorted(found, key=lambda o: o["when"])


def _summarise(observations: list[dict]) -> list[dict]:
    pairs: dict[tuple[str, str], list[float]] = {}
    for o in observations:
        pairs.setdefault((o["engine"], o["precision"]), []).append(o["error"])
    return [
        {
            "engine": engine,
            "precision": precision,
            "count": len(errors),
            "mean_error": sum(errors) / len(errors),
            "mape": sum(abs(e) for e in errors) / len(errors),
            "within_10": sum(abs(e) <= 0.10 for e in errors) / len(errors),
            "latest_error": errors[-1],
        }
        for (engine, precision), errors in sorted(pairs.items())
    ]
