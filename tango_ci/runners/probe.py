"""Describe this host as a runner file: hardware, OS, engines that import, TVM target, GPU."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from tango_ci.plugins import ENGINES, PRECISIONS

_ARCH_LABEL = {"x86_64": "x64", "aarch64": "arm64", "armv7l": "arm"}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _os_version() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.release()


def _memory_mb() -> int:
    import psutil

    return int(psutil.virtual_memory().total // 2**20)


def _distribution_version(names: tuple[str, ...]) -> str | None:
    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def _nvidia_gpu() -> dict | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,compute_cap,memory.total",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else ""
    parts = [p.strip() for p in first.split(",")]
    if len(parts) < 3:
        return None
    return {
        "kind": "nvidia-gpu",
        "name": parts[0],
        "compute_capability": parts[1],
        "memory_mb": int(float(parts[2])),
    }


def probe_engines(accelerator: dict) -> tuple[list[dict], dict[str, str]]:
    """Engines that import here, and for the others why not."""
    engines, missing = [], {}
    for name, engine in ENGINES.all().items():
        capabilities = engine.capabilities
        if accelerator["kind"] not in capabilities.precisions:
            missing[name] = f"needs {', '.join(capabilities.precisions)}"
            continue
        try:
            for module in capabilities.packages:
                import_module(module)
        except Exception as exc:  # an engine's import can fail in many ways (OSError, ...)
            missing[name] = f"import {module} failed: {type(exc).__name__}: {exc}"[:200]
            continue
        entry: dict[str, Any] = {"name": name}
        found = _distribution_version(capabilities.distributions)
        if found:
            entry["version"] = found
        entry.update(engine.probe(accelerator))
        engines.append(entry)
    return engines, missing


def probe_host(name: str = "local-cpu") -> tuple[dict, dict[str, str]]:
    """A runner description of this host, and the engines that are missing with reasons."""
    arch = platform.machine()
    accelerator = _nvidia_gpu() or {"kind": "none"}
    engines, missing = probe_engines(accelerator)
    precisions = sorted(
        set().union(
            *(ENGINES.get(e["name"]).capabilities.precisions[accelerator["kind"]] for e in engines)
        )
        or {"fp32"},
        key=PRECISIONS.index,
    )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    labels = [
        "self-hosted",
        platform.system().lower(),
        _ARCH_LABEL.get(arch, arch),
        f"tango-{name}",
    ]
    runner = {
        "name": name,
        "description": f"Probed by `tango runner probe` on {platform.node() or 'this host'}.",
        "labels": labels,
        "hardware": {
            "cpu": _cpu_model(),
            "arch": arch,
            "cores": int(cores or 1),
            "memory_mb": _memory_mb(),
            "accelerator": accelerator,
        },
        "os": {"name": platform.system().lower(), "version": _os_version()},
        "engines": engines,
        "precisions": precisions,
    }
    return runner, missing


def runner_yaml(runner: dict) -> str:
    header = (
        "# Runner file: the device this CI runner stands for. Schema: schemas/runner.schema.json\n"
    )
    return header + yaml.safe_dump(runner, sort_keys=False, default_flow_style=False)
