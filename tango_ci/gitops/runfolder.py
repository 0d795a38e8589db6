"""A finished run folder, read as data: what a report branch and the registry keep of it.

A run folder may have been downloaded from CI jobs, so it is read as data
(:mod:`tango_ci.registry.records`): every JSON file size-limited and shape-checked, and every
artifact file's sha256 compared with the stage manifests that recorded it before it is stored
or published (:func:`collect`).
"""

from __future__ import annotations

from pathlib import Path

from tango_ci.compile import ARTIFACT
from tango_ci.contracts import TrainedModel
from tango_ci.exceptions import TangoError
from tango_ci.plugins import get_task
from tango_ci.registry.records import (
    MAX_JSON_BYTES,
    NAME,
    UntrustedDataError,
    check_built,
    check_decision,
    check_metrics,
    check_model,
    check_recipe,
    check_run_spec,
    manifest_files,
    read_json_file,
)
from tango_ci.rundir import RunDir, file_sha256
from tango_ci.tasks import BaseTask

MAX_REPORT_FILE_BYTES = 16 * 2**20  # report.md, plots and report.json of one run


class ArtifactMismatch(TangoError):
    _template = (
        "run {run}: {file} has sha256 {actual}, but {manifest} recorded {expected}; "
        "the artifact was not stored or published"
    )


def _run_json(run_dir: RunDir, relative: str, check) -> dict:
    """A JSON file of the run, read as data: regular file, size-limited, strict, checked."""
    return check(
        read_json_file(run_dir.root / relative, f"run {run_dir.id}: {relative}"),
        f"run {run_dir.id}: {relative}",
    )


def _artifact_folder(run_dir: RunDir, target: str, recorded: str) -> Path:
    """The artifact folder in this copy of the run (a CI job may have measured it elsewhere):
    ``compile/<target>`` or ``compile/<target>/<candidate>``, a real folder of this run."""
    parts = Path(recorded).parts
    if "compile" not in parts:
        raise UntrustedDataError(
            f"run {run_dir.id}: artifact path {recorded} is not under compile/"
        )
    tail = parts[len(parts) - parts[::-1].index("compile") :]
    if not 1 <= len(tail) <= 2 or tail[0] != target or not all(NAME.match(p) for p in tail):
        raise UntrustedDataError(
            f"run {run_dir.id}: artifact path {recorded} is not "
            f"compile/{target} or compile/{target}/<candidate>"
        )
    folder = run_dir.root
    for part in ("compile", *tail):
        folder = folder / part
        if folder.is_symlink() or not folder.is_dir():
            raise UntrustedDataError(
                f"run {run_dir.id}: "
                f"{folder.relative_to(run_dir.root).as_posix()} is not a "
                "folder of the run (missing or a symbolic link)"
            )
    return folder


def _recorded_hashes(
    run_dir: RunDir, target: str, folder: Path, metrics: dict
) -> dict[str, list[tuple[str, str]]]:
    """relpath in ``folder`` -> (sha256, who recorded it), from every record there is."""
    prefix = folder.relative_to(run_dir.root).as_posix() + "/"
    found: dict[str, list[tuple[str, str]]] = {}
    for stage in ("compile", "bench"):
        relative = f"{stage}/manifest.json"
        if (run_dir.root / relative).exists() or (run_dir.root / relative).is_symlink():
            files = _run_json(run_dir, relative, manifest_files)
            for path, digest in files.items():
                if path.startswith(prefix):
                    found.setdefault(path[len(prefix) :], []).append((digest, relative))
    if isinstance(metrics.get("build"), dict):
        found.setdefault(metrics["build"]["file"], []).append(
            (metrics["build"]["sha256"], f"bench/{target}/metrics.json")
        )
    built_path = f"{prefix}artifact.json"
    if (run_dir.root / built_path).exists() or (run_dir.root / built_path).is_symlink():
        built = _run_json(run_dir, built_path, check_built)
        found.setdefault(built["file"], []).append((built["sha256"], built_path))
    return found


def verify_artifact(run_dir: RunDir, target: str, folder: Path, metrics: dict) -> dict:
    """Every file the stage records name in ``folder`` has the sha256 they recorded.

    Returns relpath -> sha256 of what is published of the folder: the recorded files, and the
    backend's records beside them (``artifact.json``; PyTorch's ``model.json``), each checked.
    Anything else there (build scratch, or a file planted in a downloaded run) is left out.
    A mismatch names the file and both hashes.
    """
    from tango_ci.dvcstore import regular_files

    shown = folder.relative_to(run_dir.root).as_posix()
    present = {
        p.relative_to(folder).as_posix(): p
        for p in regular_files(folder, f"run {run_dir.id}: {shown}")
    }
    recorded = _recorded_hashes(run_dir, target, folder, metrics)
    if not recorded:
        raise UntrustedDataError(
            f"run {run_dir.id}: no stage manifest records a file of "
            f"{shown}; the artifact was not stored or published"
        )
    verified = {}
    for relpath, records in sorted(recorded.items()):
        if relpath not in present:
            raise UntrustedDataError(
                f"run {run_dir.id}: {shown}/{relpath} is missing, but "
                f"{records[0][1]} records it; the artifact was not stored "
                "or published"
            )
        actual = file_sha256(present[relpath])
        for expected, manifest in records:
            if actual != expected:
                raise ArtifactMismatch(
                    run=run_dir.id,
                    file=f"{shown}/{relpath}",
                    actual=actual,
                    manifest=manifest,
                    expected=expected,
                )
        verified[relpath] = actual
    for name, check in ((ARTIFACT, check_built), ("model.json", check_model)):
        if name in present and name not in verified:
            _run_json(run_dir, f"{shown}/{name}", check)
            verified[name] = file_sha256(present[name])
    return verified


def collect(run_dir: RunDir) -> dict:
    """What a report branch and the registry keep of a finished run, checked as data."""
    needed = ["spec.json", "gate/decision.json", "train/model.json"]
    missing = [run_dir.root / p for p in needed if not (run_dir.root / p).exists()]
    if missing:
        raise TangoError(
            f"run {run_dir.id} is not finished: {missing[0]} is missing; run "
            "the pipeline up to the gate first"
        )
    recorded = _run_json(run_dir, "spec.json", check_run_spec)
    spec = recorded["spec"]
    if spec["name"] != run_dir.project_runs.name:
        raise UntrustedDataError(
            f"run {run_dir.id}: spec.json names project '{spec['name']}',"
            f" but the run is in the folder of {run_dir.project_runs.name}"
        )
    folder = f"projects/{spec['name']}"
    if isinstance(recorded.get("project_file"), str):
        project_dir = Path(recorded["project_file"]).parent
        try:
            from tango_ci.spec import find_repo_root

            folder = project_dir.relative_to(find_repo_root(project_dir)).as_posix()
        except (TangoError, ValueError, OSError):
            pass
    decision = _run_json(run_dir, "gate/decision.json", check_decision)
    model = _run_json(run_dir, "train/model.json", check_model)
    task = get_task(spec["task"])
    architecture = task.lineage(TrainedModel.from_json(model, f"run {run_dir.id}"))
    known = {t["name"] for t in spec.get("targets") or []}
    targets = {}
    for name, verdict in decision["targets"].items():
        if known and name not in known:
            raise UntrustedDataError(
                f"run {run_dir.id}: gate/decision.json judges target "
                f"{name}, which spec.json does not have"
            )
        if not (run_dir.stage_dir("bench") / name / "metrics.json").exists():
            raise TangoError(
                f"run {run_dir.id}: target {name} was not measured "
                f"({run_dir.stage_dir('bench') / name / 'metrics.json'} is "
                "missing)"
            )
        metrics = _run_json(run_dir, f"bench/{name}/metrics.json", check_metrics)
        artifact_dir = _artifact_folder(run_dir, name, metrics["artifact"])
        latency, quality = metrics["latency"], metrics["quality"]
        targets[name] = {
            "passed": verdict["passed"],
            "engine": metrics["engine"],
            "precision": metrics["precision"],
            "runner": metrics["runner"],
            "artifact_dir": str(artifact_dir),
            "artifact_files": verify_artifact(run_dir, name, artifact_dir, metrics),
            # named as gate.metric names them, so the next gate compares like with like
            "metrics": {
                **gate_numbers(task, metrics["task_metrics"]),
                quality["name"]: quality["value"],
                **{f"{p}_ms": latency[f"{p}_ms"] for p in ("p50", "p90", "p95", "p99")},
                "peak_rss_mb": latency.get("peak_rss_mb"),
                # the runner's latency model against this measurement (drift over releases)
                "latency_prediction_error": metrics.get("prediction_error"),
            },
            "failed": [c["check"] for c in verdict["checks"] if c["status"] == "fail"],
            # a supernet run deploys each target's own subnet
            "architecture": _target_architecture(run_dir, task, name, architecture),
        }
        recipe = (metrics.get("build") or {}).get("recipe")
        if recipe is not None:  # how the int8 artifact was built, so a rebuild is exact
            targets[name]["recipe"] = check_recipe(recipe, f"run {run_dir.id}: bench/{name}")
    report_files(run_dir)  # refused now, before the artifacts are stored, not after
    return {
        "project": spec["name"],
        "path": folder,
        "run": run_dir.id,
        "task": spec["task"],
        "classes": model.get("classes"),
        # what counts as the same architecture for versions (minor vs patch) is the task's
        "architecture": architecture,
        "passed": decision["passed"],
        "targets": targets,
    }


def _target_architecture(run_dir: RunDir, task: BaseTask, target: str, trained: str) -> str:
    """The lineage of the network ``target`` deploys: its specialised subnet's, else the
    trained network's (``trained``)."""
    relative = f"specialise/{target}/model.json"
    if not (run_dir.root / relative).is_file():
        return trained
    record = _run_json(run_dir, relative, check_model)
    return task.lineage(TrainedModel.from_json(record, f"run {run_dir.id}: {relative}"))


def gate_numbers(task: BaseTask, task_metrics: dict) -> dict[str, float]:
    """The task's metrics that ``gate.metric`` can name, as the next gate compares them."""
    return {
        name: float(value)
        for name in task.gate_metrics
        if isinstance(value := task_metrics.get(name), (int, float)) and not isinstance(value, bool)
    }


def report_files(run_dir: RunDir) -> dict[str, bytes]:
    """report.md, the plots and report.json of the run: regular files, size-limited."""
    files: dict[str, bytes] = {}
    report = run_dir.stage_dir("report")
    if report.is_symlink():
        raise UntrustedDataError(
            f"run {run_dir.id}: report is a symbolic link; it was not followed"
        )
    for path in sorted(report.glob("*")):
        if not (path.suffix in (".md", ".png") or path.name == "report.json"):
            continue
        what = f"run {run_dir.id}: report/{path.name}"
        if path.is_symlink() or not path.is_file():
            raise UntrustedDataError(
                f"{what} is a symbolic link or not a file; it was not published"
            )
        if path.stat().st_size > MAX_REPORT_FILE_BYTES:
            raise UntrustedDataError(
                f"{what} is {path.stat().st_size} bytes, more than the "
                f"{MAX_REPORT_FILE_BYTES} allowed; it was not published"
            )
        if path.name == "report.json":
            read_json_file(path, what, MAX_JSON_BYTES)
        files[path.name] = path.read_bytes()
    return files
