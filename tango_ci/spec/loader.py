"""Turn project and runner files into frozen dataclasses, collecting every problem on the way.

Order of checks: YAML syntax, then the JSON Schema (``schemas/``), then semantic checks that need
the file system or other files (data layout, runner files, engine capabilities).
"""

from __future__ import annotations

import os
from pathlib import Path

from tango_ci.exceptions import SpecError
from tango_ci.plugins import ENGINES, TASKS
from tango_ci.spec import _schema
from tango_ci.spec._yaml import LocatedDocument, YamlProblem, load_located
from tango_ci.spec.enums import AUTO_ENGINE, LATENCY_METRIC
from tango_ci.spec.gate_checks import check_challenger
from tango_ci.spec.models import ProjectSpec, RunnerSpec, from_dict
from tango_ci.spec.paths import (
    SQLITE,
    escape_problem,
    missing_project,
    resolve_inside,
    storage_problem,
)
from tango_ci.spec.problems import Problem, format_field
from tango_ci.spec.search_checks import check_search


def find_repo_root(start: Path) -> Path:
    """The git work tree holding ``start``; else the folder above ``projects/``; else cwd.
    Links are not followed on the way up: a ``projects`` folder linked in from elsewhere still
    belongs to this repository (and is refused as leading out of it)."""
    start = Path(os.path.abspath(start))
    for folder in [start, *start.parents]:
        if (folder / ".git").exists():
            return folder
    for folder in [start, *start.parents]:
        if folder.name in ("projects", "runners"):
            return folder.parent
    return Path.cwd().resolve()


def linked_out(path: Path, repo_root: Path) -> bool:
    """Whether ``path``, inside ``repo_root`` as written, leads out of it through a symbolic
    link on the way (a linked ``projects`` or ``runners`` folder)."""
    written, root = Path(os.path.abspath(path)), os.path.realpath(repo_root)
    # inside as written: a folder on its way (unresolved) is the repository's root, which may
    # itself lie below a link (/tmp on macOS)
    if not any(os.path.realpath(folder) == root for folder in written.parents):
        return False
    try:
        return not written.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a link loop
        return True


def _linked_out_problem(path: Path, repo_root: Path) -> Problem | None:
    """A spec file whose ``projects`` or ``runners`` folder is a link out of the repository
    (a link of the file itself or of a project folder has its own message)."""
    written = Path(os.path.abspath(path))
    folder = written.parent.parent if written.name == "project.yaml" else written.parent
    if not linked_out(folder, repo_root):
        return None
    return Problem(display_path(path), 0, 0, "", f"{display_path(folder)}/ {LINKED_OUT}")


LINKED_OUT = (
    "leads out of the repository through a symbolic link; spec files must be real files of "
    "the repository"
)


def display_path(path: Path) -> str:
    try:
        return os.path.relpath(path, Path.cwd())
    except ValueError:
        return str(path)


class _Checker:
    """Collects problems of one file and turns field paths into positions."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind
        self.display = display_path(path)
        self.problems: list[Problem] = []
        self.doc: LocatedDocument | None = None

    def parse(self) -> dict | None:
        try:
            self.doc = load_located(self.path, self.display)
        except YamlProblem as exc:
            self.problems.append(exc.problem)
            return None
        self.problems.extend(_schema.validate(self.kind, self.doc, self.display))
        if self.problems:
            return None
        return _schema.with_defaults(self.kind, self.doc.data)

    def add(self, field_path: tuple, message: str, *, prefer_key: bool = False) -> None:
        assert self.doc is not None
        position = self.doc.position(field_path, prefer_key=prefer_key)
        self.problems.append(
            Problem(self.display, position.line, position.col, format_field(field_path), message)
        )

    def raise_if_any(self) -> None:
        if self.problems:
            raise SpecError(sorted(self.problems))


# ----------------------------------------------------------------------------- runners
def load_runner(path: Path) -> RunnerSpec:
    """Load and check ``runners/<name>.yaml``; raises :class:`SpecError` with every problem."""
    checker = _Checker(Path(path), "runner")
    data = checker.parse()
    checker.raise_if_any()
    assert data is not None
    _check_runner(checker, data)
    checker.raise_if_any()
    return from_dict(RunnerSpec, data, path=Path(path).resolve())


def _check_runner(checker: _Checker, data: dict) -> None:
    if checker.path.stem != data["name"]:
        checker.add(
            ("name",),
            f"'{data['name']}' differs from the file name "
            f"'{checker.path.stem}'; targets find runners by file name",
        )
    accelerator = data["hardware"]["accelerator"]["kind"]
    seen: dict[str, int] = {}
    for index, engine in enumerate(data["engines"]):
        name = engine["name"]
        if name in seen:
            checker.add(
                ("engines", index, "name"),
                f"engine '{name}' is listed twice (also engines[{seen[name]}])",
            )
            continue
        seen[name] = index
        engine_plugin = ENGINES.get(name)
        capability = engine_plugin.capabilities
        if accelerator not in capability.precisions:
            checker.add(("engines", index, "name"), capability.refusal("fp32", accelerator) or "")
        problem = engine_plugin.runner_problem(engine, accelerator)
        if problem:
            checker.add(("engines", index, problem[0]), problem[1])
    offered = set().union(
        *(ENGINES.get(n).capabilities.precisions.get(accelerator, set()) for n in seen)
    )
    for index, precision in enumerate(data["precisions"]):
        if offered and precision not in offered:  # no usable engine at all is reported above
            checker.add(
                ("precisions", index),
                f"no listed engine offers {precision} on this "
                f"hardware (they offer {', '.join(sorted(offered))})",
            )


# ----------------------------------------------------------------------------- projects
def load_project(path: Path, repo_root: Path | None = None) -> ProjectSpec:
    """Load and check ``projects/<name>/project.yaml`` with the runner files it names."""
    path = Path(path)
    if path.is_dir() and (path / "project.yaml").exists():
        path = path / "project.yaml"
    repo_root = (repo_root or find_repo_root(path.parent)).resolve()
    if missing := missing_project(path, repo_root):
        raise SpecError([missing])
    checker = _Checker(path, "project")
    if problem := _linked_out_problem(path, repo_root):
        checker.problems.append(problem)
        checker.raise_if_any()
    if path.parent.is_symlink():  # a project folder linked in from elsewhere
        why = (
            "its folder is a symbolic link; project folders must be real folders of the repository"
        )
        checker.problems.append(Problem(checker.display, 0, 0, "", why))
        checker.raise_if_any()
    data = checker.parse()
    checker.raise_if_any()
    assert data is not None
    runners = _check_project(checker, data, repo_root)
    checker.raise_if_any()
    data["data"]["resolved"] = resolve_inside(data["data"]["path"], path.parent, repo_root)
    if challenger := data["gate"].get("challenger"):
        challenger["new_resolved"] = resolve_inside(challenger["new_data"], path.parent, repo_root)
        if challenger.get("holdout"):
            challenger["holdout_resolved"] = resolve_inside(
                challenger["holdout"], path.parent, repo_root
            )
    if storage := data["search"].get("storage"):  # checked: a file inside the repository
        relative = storage[len(SQLITE) :]
        data["search"]["storage"] = SQLITE + str(resolve_inside(relative, path.parent, repo_root))
    if not data["search"].get("families"):
        task = TASKS.get(data["task"])
        supernet = data["search"].get("strategy") == "supernet"
        data["search"]["families"] = list(task.elastic_families[:1] if supernet else task.families)
    return from_dict(ProjectSpec, data, path=path.resolve(), runners=runners)


def _check_project(checker: _Checker, data: dict, repo_root: Path) -> dict[str, RunnerSpec]:
    project_dir = checker.path.parent.resolve()
    _check_data(checker, data["data"], project_dir, repo_root, data["task"])

    pretrained = data["train"].get("pretrained")
    if pretrained:
        resolved = resolve_inside(pretrained, project_dir, repo_root)
        escape = escape_problem(pretrained, resolved, repo_root)
        if escape:
            checker.add(("train", "pretrained"), escape)
        elif not resolved.is_file():
            checker.add(
                ("train", "pretrained"),
                f"weights file '{pretrained}' not found (weights are never downloaded)",
            )

    train_runner = data["train"].get("runner", "gpu-server")
    if linked_out(repo_root / "runners", repo_root):
        checker.add(("train", "runner"), f"runners/ {LINKED_OUT}")
    elif not (repo_root / "runners" / f"{train_runner}.yaml").is_file():
        checker.add(
            ("train", "runner"),
            f"no runner file runners/{train_runner}.yaml; known runners: {_known(repo_root)}",
        )

    storage = data["search"].get("storage")
    if storage and (problem := storage_problem(storage, project_dir, repo_root)):
        checker.add(("search", "storage"), problem)

    task = TASKS.get(data["task"])
    check_search(checker, data["search"], task)
    if data["gate"].get("metric") is None:
        data["gate"]["metric"] = task.gate_metrics[0]
    if data["gate"]["metric"] not in (*task.gate_metrics, LATENCY_METRIC):
        owners = [t.name for t in TASKS.all().values() if data["gate"]["metric"] in t.gate_metrics]
        checker.add(
            ("gate", "metric"),
            f"{data['gate']['metric']} is a "
            f"{' or '.join(owners) or 'unknown'} metric; {task.name} uses "
            f"{', '.join(task.gate_metrics)} or {LATENCY_METRIC}",
        )

    if data["gate"].get("challenger"):
        check_challenger(checker, data["gate"]["challenger"], task, project_dir, repo_root)

    runners: dict[str, RunnerSpec] = {}
    first_index: dict[str, int] = {}
    for index, target in enumerate(data["targets"]):
        here = ("targets", index)
        if target["name"] in first_index:
            checker.add(
                here + ("name",),
                f"target name '{target['name']}' is already used by "
                f"targets[{first_index[target['name']]}]",
            )
        first_index.setdefault(target["name"], index)
        runner = _runner_for(checker, target, here, repo_root, runners)
        if runner is None:
            continue
        if target["engine"] == AUTO_ENGINE:
            if not _auto_possible(runner):
                checker.add(
                    here + ("engine",),
                    f"auto: no engine of runner '{runner.name}' "
                    f"offers any of its precisions {', '.join(runner.precisions)}",
                )
            continue
        engine = runner.engine(target["engine"])
        if engine is None:
            checker.add(
                here + ("engine",),
                f"runner '{runner.name}' does not offer "
                f"{target['engine']}; it has {', '.join(e.name for e in runner.engines)}",
            )
            continue
        if target["precision"] not in runner.precisions:
            checker.add(
                here + ("precision",),
                f"runner '{runner.name}' does not run "
                f"{target['precision']}; it lists {', '.join(runner.precisions)}",
            )
            continue
        refusal = ENGINES.get(target["engine"]).capabilities.refusal(
            target["precision"], runner.hardware.accelerator.kind
        )
        if refusal:
            checker.add(here + ("precision",), refusal)
    return runners


def _auto_possible(runner: RunnerSpec) -> bool:
    accelerator = runner.hardware.accelerator.kind
    return any(
        ENGINES.get(e.name).capabilities.refusal(p, accelerator) is None
        for e in runner.engines
        for p in runner.precisions
    )


def _check_data(
    checker: _Checker, data: dict, project_dir: Path, repo_root: Path, task: str
) -> None:
    resolved = resolve_inside(data["path"], project_dir, repo_root)
    owner = TASKS.get(task)
    if data["format"] not in owner.data_formats:
        checker.add(
            ("data", "format"),
            f"{task} reads {', '.join(owner.data_formats)} data, not {data['format']}",
        )
    escape = escape_problem(data["path"], resolved, repo_root)
    if escape:
        checker.add(("data", "path"), escape)
        return
    dvc_pointer = resolved.with_name(resolved.name + ".dvc")
    if not resolved.exists():
        if data.get("synth") or dvc_pointer.exists():
            return  # made by `tango data synth`, or fetched by `dvc pull`
        checker.add(
            ("data", "path"),
            f"'{data['path']}' does not exist (relative to "
            f"{display_path(project_dir)} or the repository root)",
        )
        return
    if data["format"] not in owner.data_formats:
        return  # reported above
    problem = owner.data_problem(data["format"], resolved)
    if problem:
        checker.add(("data", "path"), f"'{data['path']}' {problem}")


def _known(repo_root: Path) -> str:
    """The runner files of the repository (a folder or pipe named x.yaml is not one)."""
    known = sorted(p.stem for p in (repo_root / "runners").glob("*.yaml") if p.is_file())
    return ", ".join(known) or "none"


def _runner_for(
    checker: _Checker, target: dict, here: tuple, repo_root: Path, cache: dict[str, RunnerSpec]
) -> RunnerSpec | None:
    name = target["runner"]
    if name in cache:
        return cache[name]
    runner_path = repo_root / "runners" / f"{name}.yaml"
    if linked_out(runner_path.parent, repo_root):
        checker.add(here + ("runner",), f"runners/ {LINKED_OUT}")
        return None
    if not runner_path.is_file():
        checker.add(
            here + ("runner",),
            f"no runner file runners/{name}.yaml; known runners: {_known(repo_root)}",
        )
        return None
    try:
        cache[name] = load_runner(runner_path)
    except SpecError as exc:
        checker.add(
            here + ("runner",),
            f"runner file runners/{name}.yaml is invalid: {exc.problems[0].format()}",
        )
        return None
    return cache[name]


# ----------------------------------------------------------------------------- validate
def spec_files(repo_root: Path) -> list[Path]:
    """Every project and runner file of the repository."""
    return sorted((repo_root / "projects").glob("*/project.yaml")) + sorted(
        (repo_root / "runners").glob("*.yaml")
    )


def check_file(path: Path, repo_root: Path | None = None) -> list[Problem]:
    """All problems of one project or runner file (empty when it is valid)."""
    path = Path(path)
    root = repo_root or find_repo_root(path.parent)
    if problem := _linked_out_problem(path, root):
        return [problem]
    is_runner = path.parent.name == "runners" or (
        path.is_file() and path.name != "project.yaml" and _looks_like_runner(path)
    )
    try:
        if is_runner:
            load_runner(path)
        else:
            load_project(path, repo_root)
    except SpecError as exc:
        return exc.problems
    return []


def _looks_like_runner(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:  # the head only: the size limit is checked later
            head = handle.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return False
    return "\nhardware:" in f"\n{head}" and "\ntask:" not in f"\n{head}"
