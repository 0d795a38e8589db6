"""A project on this machine: check its files, make its data, run its pipeline, judge the run."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tango_ci.data.synth import SynthRequest, synthesize, synthesize_project
from tango_ci.exceptions import TangoError
from tango_ci.progress import SILENT, Reporter
from tango_ci.rundir import RunDir
from tango_ci.runners.probe import probe_host, runner_yaml
from tango_ci.spec import (
    Problem,
    ProjectSpec,
    check_file,
    display_path,
    find_repo_root,
    load_project,
    name_taken,
    spec_files,
)

if TYPE_CHECKING:
    from tango_ci.runners.check import Finding


def validate(paths: Iterable[Path] = (), repo_root: Path | None = None) -> list[Problem]:
    """Problems of the given spec files (folders are searched); default every file of the repo."""
    root = (repo_root or find_repo_root(Path.cwd())).resolve()
    paths = [Path(p) for p in paths]
    files = [f for path in paths for f in _expand(path)] if paths else spec_files(root)
    if not files:
        raise TangoError(
            f"no project or runner files under {display_path(root)} "
            "(looked for projects/*/project.yaml and runners/*.yaml)"
        )
    problems: list[Problem] = []
    named: dict[str, Path] = {}
    for path in files:
        # a file named on the command line belongs to its own repository, wherever tango runs
        own_root = repo_root or (find_repo_root(path.parent) if paths else root)
        found = check_file(path, own_root)
        problems.extend(found)
        if path.parent.name == "runners" and path.suffix in (".yaml", ".yml"):
            problems.extend(latency_model_problems(path))
        elif path.name == "project.yaml" and not found:
            problems.extend(name_taken(path, named))
    return problems


def latency_model_problems(runner_file: Path) -> list[Problem]:
    """Problems of the latency models a runner file has (``runners/<name>/latency/``): each
    must meet its schema and be made for this runner and the engine and precision its file
    name says; its measurements must be readable records."""
    from tango_ci.latency import LatencyModelError, load_model
    from tango_ci.latency.records import MeasurementsError, models_folder, read_measurements

    folder = models_folder(runner_file)
    problems = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            model = load_model(path)
        except LatencyModelError as exc:
            problems.append(Problem(display_path(path), 0, 0, "", exc.fields["reason"]))
            continue
        expected = f"{model.engine}-{model.precision}.json"
        if model.runner != runner_file.stem or path.name != expected:
            problems.append(
                Problem(
                    display_path(path),
                    0,
                    0,
                    "runner",
                    f"made for runner {model.runner} {model.engine} {model.precision}; a "
                    f"model of runner {runner_file.stem} belongs in runners/{runner_file.stem}/latency/{expected}",
                )
            )
    measured = [*folder.glob("*.measurements.jsonl"), *folder.glob("*.remeasured.jsonl")]
    for path in sorted(measured) if folder.is_dir() else []:
        try:
            read_measurements(path)
        except MeasurementsError as exc:
            line = exc.fields["line"]
            problems.append(
                Problem(display_path(path), line, 1 if line else 0, "", exc.fields["reason"])
            )
    return problems


def _expand(path: Path) -> list[Path]:
    """A file is itself; a folder stands for the spec files in it (or itself, to be reported)."""
    if not path.is_dir():
        return [path]
    if (path / "project.yaml").exists():
        return [path / "project.yaml"]
    found = sorted(path.rglob("project.yaml")) + sorted(path.rglob("runners/*.yaml"))
    if path.name == "runners":
        found += sorted(path.glob("*.yaml"))
    return found or [path]


def probe_runner(name: str, out: Path | None, *, force: bool = False) -> tuple[dict, dict, str]:
    """Describe this host as runner ``name``; write it to ``out`` unless None.

    Returns the runner mapping, the engines that are missing (with reasons) and the YAML text.
    """
    runner, missing = probe_host(name)
    text = runner_yaml(runner)
    if out is not None:
        out = Path(out)
        if out.exists() and not force:
            raise TangoError(f"{display_path(out)} exists; pass --force to replace it")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return runner, missing, text


def check_yolo_dataset(
    path: Path, max_problems: int = 200, max_bad_fraction: float = 0.0
) -> tuple[dict, list[Problem]]:
    """Statistics and the problems of a YOLO dataset (as file:line:col): the first
    ``max_problems``, then one saying how many there were in all; unusable images within
    ``max_bad_fraction`` are warned of instead."""
    from tango_ci.data.yolo import check_dataset

    path = Path(path)
    repo = find_repo_root(path)
    # data stays inside its repository; a dataset outside any stays inside its own folder
    limit = (
        repo
        if path.resolve().is_relative_to(repo)
        else (path if path.is_dir() else path.parent).resolve()
    )
    _, stats, problems = check_dataset(
        path, limit, max_problems=max_problems, max_bad_fraction=max_bad_fraction
    )
    return stats, problems


def synth_data(
    request: SynthRequest,
    *,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Generate a synthetic dataset as ``request`` says."""
    return synthesize(request, force=force, progress=progress)


def synth_project_data(
    project: ProjectSpec | Path,
    *,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Generate a project's data from its ``data.synth`` section into its ``data.path``."""
    spec = project if isinstance(project, ProjectSpec) else load_project(Path(project))
    return synthesize_project(spec, force=force, progress=progress)


def run(
    project: Path | ProjectSpec,
    *,
    from_stage: str | None = None,
    until: str | None = None,
    run_id: str | None = None,
    resume: bool = False,
    storage: str | None = None,
    targets: Iterable[str] = (),
    bench_seconds: float | None = None,
    bench_repeat: int = 1,
    reporter: Reporter = SILENT,
) -> RunDir:
    """Run the pipeline (or part of it) for ``project``; see :func:`pipeline.run_stages`."""
    from tango_ci.pipeline import run_stages

    options: dict = {"targets": list(targets)}
    if storage:
        options["storage"] = storage
    if bench_seconds:
        options["bench_seconds"] = bench_seconds
    if bench_repeat > 1:
        options["bench_repeat"] = bench_repeat
    return run_stages(
        project,
        from_stage=from_stage,
        until=until,
        run_id=run_id,
        resume=resume,
        options=options,
        reporter=reporter,
    )


def run_summary(run_dir: RunDir) -> dict:
    """What a person wants after a run: per target the verdict and key numbers, the report.

    A target's ``quality`` is its task's metric (``quality_name`` as people read it: accuracy,
    mAP50), from bench's ``metrics.json``.
    """
    from tango_ci.rundir import read_json

    summary: dict = {
        "run": run_dir.id,
        "path": str(run_dir.root),
        "targets": {},
        "passed": None,
        "report": None,
    }
    decision_path = run_dir.stage_dir("gate") / "decision.json"
    verdicts: dict = {}
    if decision_path.exists():
        decision = read_json(decision_path)
        summary["passed"] = decision["passed"]
        verdicts = decision["targets"]
        paths = [run_dir.stage_dir("bench") / name / "metrics.json" for name in verdicts]
    elif run_dir.is_complete("bench"):  # measured, not judged yet
        paths = sorted(run_dir.stage_dir("bench").glob("*/metrics.json"))
    else:
        paths = []
    for path in paths:
        metrics = read_json(path)
        verdict = verdicts.get(path.parent.name, {})
        summary["targets"][path.parent.name] = {
            "engine": metrics["engine"],
            "precision": metrics["precision"],
            "passed": verdict.get("passed"),
            "quality": metrics["quality"]["value"],
            "quality_name": metrics["quality"]["label"],
            "latency": metrics["latency"],
            "failed": [c["check"] for c in verdict.get("checks", []) if c["status"] == "fail"],
        }
    report = run_dir.stage_dir("report") / "report.md"
    if report.exists():
        summary["report"] = str(report)
    return summary


class GateFailed(TangoError):
    """The gate judged the run and a target failed it."""

    _template = "gate failed ({failed})"


def check_gate(summary: dict) -> None:
    """Raise :class:`GateFailed` when the gate of :func:`run_summary`'s run failed a target.

    The exit-code rule of `tango run` and of each stage command: a run stopped before the gate
    has nothing judged yet, and is not a failure.
    """
    if summary["passed"] is False:
        raise GateFailed(
            failed="; ".join(
                f"{name}: {', '.join(target['failed'])}"
                for name, target in summary["targets"].items()
                if not target["passed"]
            )
        )


def check_runner(path: Path) -> list[Finding]:
    """How this host compares with the runner file ``path``: one finding per check."""
    from tango_ci.runners.check import check_runner as compare
    from tango_ci.spec import load_runner

    return compare(load_runner(path))


@dataclass(frozen=True)
class TrackedData:
    """A folder put under DVC by :func:`track_data`."""

    data: Path
    pointer: Path
    #: the files `dvc add` created or changed, to commit: the pointer (unless the data was
    #: tracked as it is before) and the .gitignore beside the folder (unless one ignored it)
    changed: tuple[Path, ...]


def track_data(project: Path | ProjectSpec) -> list[TrackedData]:
    """Track the project's data with DVC and push it to the DVC remote: the data folder, and
    ``gate.challenger``'s new-data and holdout folders when they exist.

    Returns each folder, its pointer file and the files written, to be committed.
    """
    from tango_ci.dvcstore import track

    spec = project if isinstance(project, ProjectSpec) else load_project(Path(project))
    assert spec.data.resolved is not None
    folders = [spec.data.resolved]
    if (challenger := spec.gate.challenger) is not None:
        folders += [
            p
            for p in (challenger.new_resolved, challenger.holdout_resolved)
            if p is not None and p.is_dir()
        ]
    root = find_repo_root(spec.folder)
    tracked = []
    for folder in folders:
        pointer, changed = track(root, folder)
        tracked.append(TrackedData(folder, pointer, tuple(changed)))
    return tracked


def pull_data(project: Path | ProjectSpec) -> list[Path]:
    """Fetch the data of every DVC pointer (``*.dvc``) of the project folder; returns them."""
    from tango_ci.dvcstore import pull_pointers

    spec = project if isinstance(project, ProjectSpec) else load_project(Path(project))
    return pull_pointers(find_repo_root(spec.folder), spec.folder)
