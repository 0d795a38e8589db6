"""Run directories: ``runs/<project>/<run-id>/`` with one folder and manifest per stage.

Rules that keep results safe:
- a stage whose folder has a complete manifest is never run again in that run: re-running it
  forks a new run (earlier stages' folders are copied), and ``latest`` points at the new one;
- a stage folder without a complete manifest was interrupted: running it again resumes there.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterable

from tango_ci.exceptions import StageInputError, TangoError

STAGES = ("data", "search", "train", "export", "compile", "bench", "gate", "report")
MANIFEST = "manifest.json"
_TOOLS = ("tango-ci", "torch", "torchvision", "onnx", "onnxruntime", "apache-tvm", "optuna",
          "ultralytics", "numpy")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tool_versions(names: Iterable[str] = _TOOLS) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically, so a kill never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(partial, path)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


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

    def manifest(self, stage: str) -> dict | None:
        path = self.stage_dir(stage) / MANIFEST
        if not path.is_file():
            return None
        data = read_json(path)
        return data if data.get("status") == "complete" else None

    def is_complete(self, stage: str) -> bool:
        return self.manifest(stage) is not None

    def require(self, stage: str, needed: str, what: str) -> dict:
        """The manifest of ``needed``; a clear error naming the stage to run when missing."""
        manifest = self.manifest(needed)
        if manifest is None:
            raise StageInputError(stage=stage, what=f"{what} from the {needed} stage "
                                  f"(not found in {self.root})", previous=needed)
        return manifest

    @property
    def spec(self) -> dict:
        return read_json(self.root / "spec.json")


def runs_root(repo_root: Path) -> Path:
    return Path(os.environ.get("TANGO_RUNS_DIR") or repo_root / "runs")


def create_run(runs: Path, project: str, spec: dict) -> RunDir:
    root = runs / project / new_run_id()
    root.mkdir(parents=True)
    write_json(root / "spec.json", spec)
    _point_latest(root)
    return RunDir(root)


def fork_run(run: RunDir, keep: Iterable[str]) -> RunDir:
    """A new run holding copies of ``keep`` stage folders of ``run`` (its earlier results)."""
    root = run.project_runs / new_run_id()
    root.mkdir()
    shutil.copy2(run.root / "spec.json", root / "spec.json")
    for stage in keep:
        if run.stage_dir(stage).exists():
            shutil.copytree(run.stage_dir(stage), root / stage, symlinks=True)
    write_json(root / "forked-from.json", {"run": run.id})
    _point_latest(root)
    return RunDir(root)


def _point_latest(root: Path) -> None:
    link = root.parent / "latest"
    temporary = root.parent / f".latest-{secrets.token_hex(4)}"
    temporary.symlink_to(root.name)
    os.replace(temporary, link)


def latest_run(runs: Path, project: str) -> RunDir | None:
    link = runs / project / "latest"
    if not link.exists():
        return None
    return RunDir(link.resolve())


def find_run(runs: Path, project: str, run_id: str | None) -> RunDir:
    if run_id:
        root = runs / project / run_id
        if not (root / "spec.json").is_file():
            known = sorted(p.name for p in (runs / project).glob("*/spec.json"))
            raise TangoError(f"no run '{run_id}' of project {project}; runs: "
                             f"{', '.join(p.split('/')[0] for p in known) or 'none'}")
        return RunDir(root)
    run = latest_run(runs, project)
    if run is None:
        raise StageInputError(stage="this stage", what=f"a run of project {project}",
                              previous=f"data projects/{project}` or `tango run projects/{project}")
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
        self.started = time.time()

    def input_file(self, name: str, path: Path) -> None:
        self.inputs[name] = {"path": self._relative(path), "sha256": file_sha256(path)}

    def output_file(self, name: str, path: Path) -> None:
        self.outputs[name] = {"path": self._relative(path), "sha256": file_sha256(path),
                              "bytes": path.stat().st_size}

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
            "started": datetime.fromtimestamp(self.started, timezone.utc).isoformat(),
            "ended": datetime.fromtimestamp(ended, timezone.utc).isoformat(),
            "duration_s": round(ended - self.started, 3),
            "inputs": self.inputs,
            "outputs": self.outputs,
            "summary": self.summary,
            "tools": tool_versions(),
            "host": {"node": platform.node(), "machine": platform.machine(),
                     "python": sys.version.split()[0]},
        }
        write_json(self.folder / MANIFEST, manifest)
        return manifest
