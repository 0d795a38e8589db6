"""Chains the stages over one run directory. Each stage is also runnable alone (CI jobs)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from tango_ci.context import StageContext
from tango_ci.exceptions import TangoError, UnknownNameError
from tango_ci.plugins import get_task
from tango_ci.progress import SILENT, Reporter
from tango_ci.rundir import (
    STAGES,
    RunDir,
    StageRecorder,
    create_run,
    file_sha256,
    find_run,
    fork_run,
    point_latest,
    runs_root,
)
from tango_ci.spec import ProjectSpec, display_path, find_repo_root, load_project, to_dict
from tango_ci.stages import bench, gate, report, search, specialise
from tango_ci.stages import compile as compile_stage
from tango_ci.tasks import BaseTask, StageFunction
from tango_ci.train.device import device_for

#: the stages every task shares; the task gives the others (data, train, export)
SHARED_STAGES: dict[str, StageFunction] = {
    "search": search.run,
    "specialise": specialise.run,
    "compile": compile_stage.run,
    "bench": bench.run,
    "gate": gate.run,
    "report": report.run,
}


def stage_function(stage: str, task: BaseTask) -> StageFunction:
    own = task.stages()
    if stage in own:
        return own[stage]
    if stage in SHARED_STAGES:
        return SHARED_STAGES[stage]
    raise TangoError(f"task '{task.name}' gives no {stage} stage")


class ProjectChanged(TangoError):
    _template = (
        "{project} changed since run {run} started; start a new run with `tango run {folder}`"
    )


class RunnerChanged(TangoError):
    _template = (
        "{file} changed since the {stage} stage of run {run} used it; start a new run with "
        "`tango run {folder}`"
    )


#: stages whose results depend on the targets' runner files (threads, engines) and latency
#: models; a supernet's search trains without them, so they may change (a device profiled)
#: before its subnets are specialised
RUNNER_STAGES = ("search", "specialise", "compile", "bench", "gate")


def runner_files(spec: ProjectSpec) -> dict[str, str]:
    """sha256 of the runner files of the project's targets and of their latency models, by
    path in the repository."""
    from tango_ci.latency.records import models_folder

    root = find_repo_root(spec.folder)
    files: dict[str, str] = {}
    for name in sorted({target.runner for target in spec.targets}):
        path = spec.runners[name].path
        if path is None:
            continue
        folder = models_folder(path)
        for file in [path, *(sorted(folder.glob("*.json")) if folder.is_dir() else [])]:
            if file.is_file():
                shown = file.relative_to(root) if file.is_relative_to(root) else file
                files[shown.as_posix()] = file_sha256(file)
    return files


def _uses_runners(stage: str, spec: ProjectSpec) -> bool:
    return stage in RUNNER_STAGES and not (stage == "search" and spec.search.strategy == "supernet")


def _check_runner_files(run: RunDir, spec: ProjectSpec, before: str) -> None:
    """Refuse to go on with ``run`` when a runner file or latency model that a stage before
    ``before`` recorded has changed since: the run would mix two set-ups."""
    now: dict[str, str] | None = None
    for stage in STAGES[: STAGES.index(before)]:
        manifest = run.manifest(stage)
        recorded = manifest.get("runner_files") if manifest else None
        if not isinstance(recorded, dict):
            continue
        now = runner_files(spec) if now is None else now
        for name, digest in recorded.items():
            if now.get(name) != digest:
                raise RunnerChanged(
                    file=str(name)[:200],
                    stage=stage,
                    run=run.id,
                    folder=display_path(spec.folder),
                )


def select_stages(from_stage: str | None, until: str | None) -> list[str]:
    for name in (from_stage, until):
        if name is not None and name not in STAGES:
            raise UnknownNameError(kind="stage", name=name, valid=", ".join(STAGES))
    first = STAGES.index(from_stage) if from_stage else 0
    last = STAGES.index(until) if until else len(STAGES) - 1
    if first > last:
        raise TangoError(f"--from {from_stage} comes after --until {until}")
    return list(STAGES[first : last + 1])


def _project_file(spec: ProjectSpec) -> Path:
    """The project.yaml ``spec`` was loaded from."""
    if spec.path is None:
        raise RuntimeError(f"project {spec.name} was not loaded from a file")
    return spec.path


def _spec_record(spec: ProjectSpec) -> dict:
    path = _project_file(spec)
    return {"project_file": str(path), "sha256": file_sha256(path), "spec": to_dict(spec)}


#: an unfinished fork copy untouched this long was left by a killed process, not one at work
STALE_PARTIAL_S = 24 * 3600


def remove_stale_partials(project_runs: Path) -> None:
    """Remove the copies killed forks left (``.<id>.partial``, a day or more old): they are
    never runs, and nothing else would ever clean them up. Links are not followed."""
    now = time.time()
    for stale in project_runs.glob(".*.partial"):
        old = stale.is_dir() and now - stale.stat().st_mtime > STALE_PARTIAL_S
        if old and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)


def open_run(
    spec: ProjectSpec, stages: list[str], *, run_id: str | None, resume: bool, runs: Path
) -> RunDir:
    """The run to work in: new, the latest (to resume), or a fork that keeps earlier results."""
    if stages[0] == "data" and run_id is None and not resume:
        return create_run(runs, spec.name, _spec_record(spec))
    run = find_run(runs, spec.name, run_id)
    path = _project_file(spec)
    if run.spec.get("sha256") != file_sha256(path):
        raise ProjectChanged(
            project=display_path(path), run=run.id, folder=display_path(spec.folder)
        )
    if not resume and any(run.is_complete(stage) for stage in stages):
        keep = STAGES[: STAGES.index(stages[0])]
        for stage in keep:  # never copy a tampered file into a new run
            run.verify(stage)
        remove_stale_partials(run.project_runs)
        return fork_run(run, keep)
    return run


def _latest_id(runs: Path, project: str) -> str | None:
    link = runs / project / "latest"
    return os.readlink(link) if link.is_symlink() else None


def _hand_back_latest(run: RunDir, previous: str | None) -> bool:
    """Point ``latest`` at ``previous`` again (remove it when there was none), unless another
    process has moved it on from ``run`` since; returns whether it was moved."""
    link = run.project_runs / "latest"
    if not link.is_symlink() or os.readlink(link) != run.id:
        return False
    if previous is not None and (run.project_runs / previous / "spec.json").is_file():
        point_latest(run.project_runs / previous)
    else:
        link.unlink()
    return True


def run_stages(
    project: Path | ProjectSpec,
    *,
    from_stage: str | None = None,
    until: str | None = None,
    run_id: str | None = None,
    resume: bool = False,
    options: dict[str, Any] | None = None,
    reporter: Reporter = SILENT,
) -> RunDir:
    """Run stages ``from_stage``..``until`` of ``project``; returns the run directory.

    A new run starts at the data stage; later stages work on the latest run (or ``run_id``).
    A stage already complete there is kept: it is skipped with ``resume``, else the work
    moves to a new run holding copies of the earlier stages, so no result is overwritten.
    """
    spec = project if isinstance(project, ProjectSpec) else load_project(Path(project))
    stages = select_stages(from_stage, until)
    if {"search", "train"} & set(stages):
        device_for(spec)  # a GPU this host lacks is refused before any work
    runs = runs_root(find_repo_root(spec.folder))
    previous = _latest_id(runs, spec.name)
    run = open_run(spec, stages, run_id=run_id, resume=resume, runs=runs)
    new = run.id != previous and _latest_id(runs, spec.name) == run.id  # made just now
    completed: list[str] = []
    try:
        with run.lock():
            _run_locked(run, spec, stages, options or {}, reporter, completed)
    except Exception:
        # a new run that made nothing must not become the one later commands pick
        if new and not completed and _hand_back_latest(run, previous):
            back = f"run {previous}" if previous else "no run"
            reporter.log(f"run {run.id} made nothing; latest points at {back} again")
        raise
    return run


def _run_locked(
    run: RunDir,
    spec: ProjectSpec,
    stages: list[str],
    options: dict[str, Any],
    reporter: Reporter,
    completed: list[str],
) -> None:
    task = get_task(spec.task)
    verified: set[str] = set()  # stages whose files this process wrote or checked
    for stage in stages:
        if run.is_complete(stage):
            reporter.log(f"{stage}: already complete in run {run.id}, kept")
            continue
        checked = [
            earlier
            for earlier in STAGES[: STAGES.index(stage)]
            if earlier not in verified and run.verify(earlier)
        ]
        verified.update(STAGES[: STAGES.index(stage)])
        if checked:
            reporter.log(f"checked the files of {', '.join(checked)} against their manifests")
        _check_runner_files(run, spec, stage)
        recorder = StageRecorder(run, stage)
        recorder.folder.mkdir(parents=True, exist_ok=True)
        if _uses_runners(stage, spec):
            recorder.runner_files = runner_files(spec)
        context = StageContext(
            run=run, spec=spec, recorder=recorder, reporter=reporter, options=dict(options)
        )
        reporter.stage_started(stage, run.id)
        task.prepare(context)
        stage_function(stage, task)(context)
        reporter.stage_finished(stage, recorder.finish())
        completed.append(stage)
        verified.add(stage)
