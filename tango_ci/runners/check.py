"""`tango runner check`: does this host match a runner file? A mislabelled runner would
otherwise produce benchmark numbers for a device it is not."""

from __future__ import annotations

from dataclasses import dataclass

from tango_ci.runners.probe import probe_host
from tango_ci.spec import RunnerSpec


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "warning" | "ok"
    what: str
    message: str


def _version_matches(declared: str, installed: str) -> bool:
    """ "1.32" matches 1.32.0 and 1.32.1; "2" matches 2.14.1."""
    want = declared.split(".")
    return installed.split("+")[0].split(".")[: len(want)] == want


def check_runner(spec: RunnerSpec) -> list[Finding]:
    host, missing = probe_host(spec.name)
    findings: list[Finding] = []
    hardware = host["hardware"]
    if hardware["arch"] != spec.hardware.arch:
        findings.append(
            Finding(
                "error",
                "hardware.arch",
                f"this host is {hardware['arch']}, the file says {spec.hardware.arch}",
            )
        )
    else:
        findings.append(Finding("ok", "hardware.arch", hardware["arch"]))
    declared_gpu = spec.hardware.accelerator.kind
    host_gpu = hardware["accelerator"]["kind"]
    if declared_gpu != "none" and host_gpu != declared_gpu:
        findings.append(
            Finding(
                "error",
                "hardware.accelerator",
                f"the file declares {declared_gpu}; none is usable here (nvidia-smi found none)",
            )
        )
    elif declared_gpu != host_gpu:
        findings.append(
            Finding(
                "warning",
                "hardware.accelerator",
                f"this host has "
                f"{hardware['accelerator'].get('name', host_gpu)}, which the "
                "file does not declare",
            )
        )
    else:
        findings.append(Finding("ok", "hardware.accelerator", host_gpu))
    if hardware["cores"] < spec.threads:
        findings.append(
            Finding(
                "warning",
                "hardware.cores",
                f"{hardware['cores']} cores here, the file measures with {spec.threads} threads",
            )
        )
    installed = {e["name"]: e for e in host["engines"]}
    for engine in spec.engines:
        where = f"engines.{engine.name}"
        if engine.name not in installed:
            findings.append(Finding("error", where, missing.get(engine.name, "not installed")))
            continue
        found = installed[engine.name].get("version")
        if engine.version and found and not _version_matches(engine.version, found):
            findings.append(
                Finding("error", where, f"{found} installed, the file says {engine.version}")
            )
            continue
        absent = [
            p
            for p in engine.execution_providers
            if p not in installed[engine.name].get("execution_providers", [p])
        ]
        if absent:
            findings.append(
                Finding(
                    "error", where, f"execution provider(s) {', '.join(absent)} not available here"
                )
            )
            continue
        findings.append(Finding("ok", where, found or "importable"))
    return findings
