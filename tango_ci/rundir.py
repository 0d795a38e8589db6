"""Run directories: ``runs/<project>/<run-id>/`` with one folder and manifest per stage.

JSON and record files are read and written by :mod:`tango_ci.jsonfiles` (re-exported here).

Rules that keep results safe:
- a stage whose folder has a complete manifest is never run again in that run: re-running it
  forks a new run (earlier stages' folders are copied), and ``latest`` points at the new one;
- a stage folder without a complete manifest was interrupted: running it again resumes there;
- a new run whose first stage fails with an error hands ``latest`` back to the run before it
  (a run killed part way keeps ``latest``, so that ``--resume`` continues it);
- one process at a time works in a run: ``lock()`` refuses a second with the holder's PID;
- run folders travel between CI jobs and machines, so they are data: JSON is size-limited and
  must be strict JSON (no NaN), run ids are plain names inside ``runs/<project>/``, and a stage
  uses an earlier stage's files only after ``verify()`` matched each file's sha256 with the
  manifest that the producing stage wrote.
"""

from __future__ import annotations

import errno
import fcntl
import os
import platform
import re
import secrets
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from tango_ci.contracts import RUN_FILES, schema_problem
from tango_ci.exceptions import StageInputError, TangoError
from tango_ci.jsonfiles import (
    MAX_JSON_BYTES,
    RunFileError,
    display,
    file_sha256,
    one_line_reason,
    read_json,
    read_record,
    strict_json,
    write_json,
    write_record,
)

STAGES = ("data", "search", "train", "specialise", "export", "compile", "bench", "gate", "report")
MANIFEST = "manifest.json"
# recorded in every manifest, beside the engines' own distributions
_TOOLS = ("tango-ci", "torch", "torchvision", "onnx", "optuna", "ultralytics", "numpy")


def engine_distributions() -> list[str]:
    """The distributions of every engine in the engine table (installed or not)."""
    from tango_ci.plugins import ENGINES

    return list(
        dict.fromkeys(
            d for engine in ENGINES.all().values() for d in engine.capabilities.distributions
        )
    )


def tool_versions(names: Iterable[str] | None = None) -> dict[str, str]:
    """Versions of ``names`` that are installed (default: the tools and every engine)."""
    names = [*_TOOLS, *engine_distributions()] if names is None else names
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class RunDir:
    root: Path  # runs/<project>/<run-id>

    @property
    def id(self) -> str:
        return self.root.name

    @property
    def project_runs(self) -> Path:
        return self.root.parent

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def model_dir(self, target: str) -> Path:
        """The trained network ``target`` deploys (``model.json`` and ``best.pt``): the
        subnet specialised for it when a supernet was specialised, else the train stage's."""
        specialised = self.root / "specialise" / target
        if (specialised / "model.json").is_file():
            return specialised
        return self.root / "train"

    def manifest(self, stage: str) -> dict | None:
        path = self.stage_dir(stage) / MANIFEST
        if not path.is_file():
            return None
        data = read_json(path)
        if not isinstance(data, dict):
            raise RunFileError(f"{display(path)}: expected a JSON object")
        return data if data.get("status") == "complete" else None

    def verify(self, stage: str) -> int:
        """Check every output the manifest of ``stage`` records against its sha256.

        Returns how many files were checked; raises naming the file and both hashes.
        """
        manifest = self.manifest(stage)
        if manifest is None:
            return 0
        outputs, where = manifest.get("outputs"), display(self.stage_dir(stage) / MANIFEST)
        if not isinstance(outputs, dict):
            raise RunFileError(f"{where}: 'outputs' must be a JSON object")
        root = self.root.resolve()
        for name, entry in outputs.items():
            relative = entry.get("path") if isinstance(entry, dict) else None
            if not isinstance(relative, str) or not isinstance(entry.get("sha256"), str):
                raise RunFileError(f"{where}: output {name[:60]!r} needs a path and a sha256")
            path = self.root / relative  # checked for a NUL first: resolve() would raise
            if (
                "\0" in relative
                or os.path.isabs(relative)
                or not path.resolve().is_relative_to(root)
            ):
                raise RunFileError(f"{where}: output {relative[:80]!r} is outside the run folder")
            if not path.is_file():
                raise RunFileError(
                    f"{display(path)}: missing, although the {stage} stage "
                    "recorded it; re-run that stage"
                )
            actual = file_sha256(path)
            if actual != entry["sha256"]:
                raise RunFileError(
                    f"{display(path)}: sha256 {actual[:16]}… differs from "
                    f"{entry['sha256'][:16]}… recorded by the {stage} stage; "
                    f"the file changed after it was written (re-run `tango "
                    f"{stage}` or start a new run)"
                )
        return len(outputs)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run for this process; a second writer is refused with the holder's PID."""
        path = self.root / ".lock"
        try:
            handle = open(path, "a+")  # noqa: SIM115 - entered below, after the error check
        except OSError as exc:
            raise RunFileError(
                f"{display(path)}: cannot open the run's lock file ({exc.strerror})"
            ) from None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise RunBusy(run=self.id, pid=holder) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()

    def is_complete(self, stage: str) -> bool:
        return self.manifest(stage) is not None

    def require(self, stage: str, needed: str, what: str) -> dict:
        """The manifest of ``needed``; a clear error naming the stage to run when missing."""
        manifest = self.manifest(needed)
        if manifest is None:
            file = self.spec.get("project_file") if (self.root / "spec.json").is_file() else None
            folder = display(Path(file).parent) if isinstance(file, str) else None
            what = f"{what} from the {needed} stage (not found in {self.root})"
            raise StageInputError(stage=stage, what=what, previous=needed, project=folder)
        return manifest

    @property
    def spec(self) -> dict:
        data = read_json(self.root / "spec.json")
        if not isinstance(data, dict):
            raise RunFileError(f"{display(self.root / 'spec.json')}: expected a JSON object")
        return data


def runs_root(repo_root: Path) -> Path:
    """``TANGO_RUNS_DIR``, else the repository's ``runs/``: a real folder, not a link."""
    if chosen := os.environ.get("TANGO_RUNS_DIR"):
        return Path(chosen)
    if (runs := Path(repo_root) / "runs").is_symlink():
        raise TangoError(
            f"{display(runs)} is a symbolic link (to {os.readlink(runs)}); runs are written "
            "inside the repository: remove the link, or set TANGO_RUNS_DIR to write elsewhere"
        )
    return runs


def create_run(runs: Path, project: str, spec: dict) -> RunDir:
    if (runs / project).resolve() != runs.resolve() / project:  # a committed link elsewhere
        raise TangoError(f"{display(runs / project)} is a link; runs stay inside {display(runs)}")
    root = runs / project / new_run_id()
    root.mkdir(parents=True)
    write_json(root / "spec.json", spec)
    point_latest(root)
    return RunDir(root)


def fork_run(run: RunDir, keep: Iterable[str]) -> RunDir:
    """A new run holding copies of ``keep`` stage folders of ``run`` (its earlier results)."""
    root = run.project_runs / new_run_id()
    staging = root.with_name(f".{root.name}.partial")  # not a run until renamed, whole
    staging.mkdir()
    shutil.copy2(run.root / "spec.json", staging / "spec.json")
    for stage in keep:
        if run.stage_dir(stage).exists():
            shutil.copytree(run.stage_dir(stage), staging / stage, symlinks=True)
    write_json(staging / "forked-from.json", {"run": run.id})
    staging.rename(root)
    point_latest(root)
    return RunDir(root)


def point_latest(root: Path) -> None:
    """Point ``runs/<project>/latest`` at the run folder ``root`` (an atomic swap)."""
    temporary = root.parent / f".latest-{secrets.token_hex(4)}"
    temporary.symlink_to(root.name)
    os.replace(temporary, root.parent / "latest")


class RunBusy(TangoError):
    _template = "run {run} is in use by process {pid}; wait for it to finish, or start a new run"


def latest_run(runs: Path, project: str) -> RunDir | None:
    link = runs / project / "latest"
    if not link.exists():
        return None
    target = link.resolve()
    if target.parent != (runs / project).resolve() or not RUN_ID.fullmatch(target.name):
        raise RunFileError(
            f"{display(link)}: points outside {display(runs / project)}; "
            "remove the link and pass --run"
        )
    return RunDir(target)


def find_run(runs: Path, project: str, run_id: str | None) -> RunDir:
    if run_id:
        if not RUN_ID.fullmatch(run_id) or ".." in run_id:
            raise TangoError(
                f"--run {run_id[:80]!r} is not a run id (letters, digits, dots, "
                f"dashes and underscores, a folder of runs/{project}/)"
            )
        root = runs / project / run_id
        if root.is_symlink() or not (root / "spec.json").is_file():
            known = sorted(
                p.parent.name
                for p in (runs / project).glob("*/spec.json")
                if not p.parent.is_symlink() and RUN_ID.fullmatch(p.parent.name)
            )
            raise TangoError(
                f"no run '{run_id}' of project {project}; runs: {', '.join(known) or 'none'}"
            )
        return RunDir(root)
    run = latest_run(runs, project)
    if run is None:
        raise TangoError(
            f"project {project} has no run yet; start one with `tango run projects/{project}`"
        )
    return run


class StageRecorder:
    """Times a stage and writes its manifest: inputs (with hashes), outputs, tools, times."""

    def __init__(self, run: RunDir, stage: str) -> None:
        self.run = run
        self.stage = stage
        self.folder = run.stage_dir(stage)
        self.inputs: dict[str, Any] = {}
        self.outputs: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self.runner_files: dict[str, str] = {}  # sha256 of those the results depend on
        self.started = time.time()

    def input_file(self, name: str, path: Path) -> None:
        self.inputs[name] = {"path": self._relative(path), "sha256": file_sha256(path)}

    def output_file(self, name: str, path: Path) -> None:
        self.outputs[name] = {
            "path": self._relative(path),
            "sha256": file_sha256(path),
            "bytes": path.stat().st_size,
        }

    def _relative(self, path: Path) -> str:
        try:
            return str(Path(path).resolve().relative_to(self.run.root.resolve()))
        except ValueError:
            return str(path)

    def finish(self) -> dict:
        ended = time.time()
        manifest = {
            "stage": self.stage,
            "status": "complete",
            "run": self.run.id,
            "started": datetime.fromtimestamp(self.started, UTC).isoformat(),
            "ended": datetime.fromtimestamp(ended, UTC).isoformat(),
            "duration_s": round(ended - self.started, 3),
            "inputs": self.inputs,
            "outputs": self.outputs,
            "summary": self.summary,
            **({"runner_files": self.runner_files} if self.runner_files else {}),
            "tools": tool_versions(),
            "host": {
                "node": platform.node(),
                "machine": platform.machine(),
                "python": sys.version.split()[0],
            },
        }
        write_json(self.folder / MANIFEST, manifest)
        return manifest


def check_run_folder(root: Path) -> list[str]:
    """Every way the hand-off files of the run folder ``root`` break their schemas
    (``schemas/run/``), read as data (strict, size-limited, regular files inside the folder);
    empty when they all hold. Files a stage has not written yet are not problems."""
    root = Path(root)
    inside = root.resolve()
    problems = []
    for pattern, schema in RUN_FILES:
        for path in sorted(root.glob(pattern)):
            relative = path.relative_to(root).as_posix()
            if not path.resolve().is_relative_to(inside) or path.is_symlink():
                problems.append(f"{relative}: leads out of the run folder (a link)")
                continue
            try:
                data = read_json(path)
            except TangoError as exc:
                problems.append(f"{relative}: {exc.message}")
                continue
            problem = schema_problem(schema, data)
            if problem:
                problems.append(f"{relative}: {problem}")
    return problems


# the JSON helpers are re-exported: run folders are read and written through this module
__all__ = [
    "MANIFEST",
    "MAX_JSON_BYTES",
    "RUN_ID",
    "STAGES",
    "RunBusy",
    "RunDir",
    "RunFileError",
    "StageRecorder",
    "check_run_folder",
    "create_run",
    "display",
    "engine_distributions",
    "file_sha256",
    "find_run",
    "fork_run",
    "latest_run",
    "new_run_id",
    "one_line_reason",
    "point_latest",
    "read_json",
    "read_record",
    "runs_root",
    "strict_json",
    "tool_versions",
    "write_json",
    "write_record",
]
