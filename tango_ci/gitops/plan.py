"""`tango ci plan`: which projects and targets a change needs to run, as workflow matrices.

A project is planned when, between the base and the head, its project.yaml changed, a DVC
pointer (``*.dvc``) in its folder or of its data path changed, or a runner file it uses
(a target's runner or ``train.runner``) changed. Other files plan nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from tango_ci.exceptions import TangoError
from tango_ci.gitrepo import changed_files
from tango_ci.spec import load_project, load_runner


@dataclass
class Plan:
    projects: list[dict] = field(default_factory=list)  # one search/train job each
    targets: list[dict] = field(default_factory=list)  # one compile/bench job each
    reasons: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"projects": self.projects, "targets": self.targets, "reasons": self.reasons}

    def github_output(self) -> str:
        """Lines for $GITHUB_OUTPUT: matrices as compact JSON, and whether there is work."""
        return (
            f"projects={json.dumps({'include': self.projects}, separators=(',', ':'))}\n"
            f"targets={json.dumps({'include': self.targets}, separators=(',', ':'))}\n"
            f"any={'true' if self.projects else 'false'}\n"
        )


def _reasons(root: Path, project_yaml: Path, spec, changed: set[str]) -> list[str]:
    folder = project_yaml.parent.relative_to(root).as_posix()
    reasons = []
    if f"{folder}/project.yaml" in changed:
        reasons.append(f"{folder}/project.yaml changed")
    data_pointer = None
    if spec.data.resolved is not None and spec.data.resolved.is_relative_to(root):
        data_pointer = spec.data.resolved.relative_to(root).as_posix() + ".dvc"
    for path in sorted(changed):
        if path.endswith(".dvc") and (path.startswith(folder + "/") or path == data_pointer):
            reasons.append(f"data pointer {path} changed")
    runners = sorted({t.runner for t in spec.targets} | {spec.train.runner})
    for name in runners:
        if f"runners/{name}.yaml" in changed:
            reasons.append(f"runners/{name}.yaml changed")
    return reasons


def make_plan(
    root: Path,
    base: str | None,
    head: str = "HEAD",
    *,
    everything: bool = False,
    only: tuple[str, ...] = (),
) -> Plan:
    """The plan for ``base..head`` of the repository at ``root`` (its working tree is head)."""
    root = root.resolve()
    changed = set(changed_files(root, base, head)) if not (everything or only) else set()
    plan = Plan()
    for project_yaml in sorted((root / "projects").glob("*/project.yaml")):
        spec = load_project(project_yaml)
        if only:
            reasons = ["asked for"] if spec.name in only else []
        elif everything:
            reasons = ["all projects asked for"]
        else:
            reasons = _reasons(root, project_yaml, spec, changed)
        if not reasons:
            continue
        folder = spec.folder.relative_to(root).as_posix()
        train_runner = load_runner(root / "runners" / f"{spec.train.runner}.yaml")
        plan.reasons[spec.name] = reasons
        plan.projects.append(
            {
                "project": spec.name,
                "path": folder,
                "runner": train_runner.name,
                "runs-on": list(train_runner.labels),
            }
        )
        for target in spec.targets:
            runner = spec.runners[target.runner]
            plan.targets.append(
                {
                    "project": spec.name,
                    "path": folder,
                    "target": target.name,
                    "runner": runner.name,
                    "runs-on": list(runner.labels),
                }
            )
    unknown = set(only) - set(plan.reasons)
    if unknown:
        known = sorted(p.parent.name for p in (root / "projects").glob("*/project.yaml"))
        raise TangoError(
            f"no project named {', '.join(sorted(unknown))}; projects: {', '.join(known) or 'none'}"
        )
    return plan


def write_github_output(plan: Plan) -> Path | None:
    target = os.environ.get("GITHUB_OUTPUT")
    if not target:
        return None
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(plan.github_output())
    return Path(target)
