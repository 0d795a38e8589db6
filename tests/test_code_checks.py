"""The rules of ARCHITECTURE.md, checked: layers (import-linter), lint and format (ruff),
types (mypy), file size, private names, task names, and schema enums against the tables."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tango_ci.plugins import ENGINES, PRECISIONS, TASKS
from tango_ci.spec.enums import registry_enums
from tests.conftest import REPO

PACKAGE = REPO / "tango_ci"
MAX_LINES = 400
CHECKED = ["tango_ci", "tests", "benchmarks", "scripts"]


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is not installed in this environment (pip install -e '.[test]')")
    return found


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_layers_and_cycles_hold() -> None:
    result = _run(_tool("lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout[-4000:]


def test_ruff_lint_passes() -> None:
    result = _run(_tool("ruff"), "check", *CHECKED)
    assert result.returncode == 0, result.stdout[-4000:]


def test_ruff_format_is_kept() -> None:
    result = _run(_tool("ruff"), "format", "--check", *CHECKED)
    assert result.returncode == 0, result.stdout[-4000:]


def test_mypy_passes() -> None:
    result = _run(_tool("mypy"))
    assert result.returncode == 0, result.stdout[-4000:]


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_file_is_over_400_lines() -> None:
    files = [p for folder in CHECKED for p in (REPO / folder).rglob("*.py")]
    long = {
        str(p.relative_to(REPO)): n
        for p in files
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert len(files) > 100 and long == {}


def _package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _imports(path: Path):
    module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield module, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield module, alias.name, []


def test_no_private_name_is_imported_across_packages() -> None:
    crossing = []
    for path in _modules():
        for module, imported, names in _imports(path):
            if not imported.startswith("tango_ci.") or _package_of(imported) == _package_of(module):
                continue
            private = [n for n in names if n.startswith("_")]
            private += [p for p in imported.split(".") if p.startswith("_")]
            if private:
                crossing.append(f"{module} imports {', '.join(private)} from {imported}")
    assert crossing == []


def _comparisons_with(names: set[str], skip: tuple[str, ...]) -> list[str]:
    """file:line of every comparison (==, !=, in) against one of ``names`` outside ``skip``."""
    found = []
    for path in _modules():
        relative = path.relative_to(REPO).as_posix()
        if relative.startswith(skip):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            values = [o for o in operands if isinstance(o, ast.Constant)]
            values += [
                e
                for o in operands
                if isinstance(o, (ast.Tuple, ast.List, ast.Set))
                for e in o.elts
                if isinstance(e, ast.Constant)
            ]
            if any(v.value in names for v in values):
                found.append(f"{relative}:{node.lineno}")
    return found


def test_no_module_outside_tasks_compares_a_task_name() -> None:
    names = set(TASKS.builtin_names())
    # the bundle runtime runs on devices without the registry: it reads the task from the
    # bundle's postprocess.json and can only name the tasks it knows
    allowed = ("tango_ci/tasks/", "tango_ci/plugins.py", "tango_ci/runtime/")
    assert _comparisons_with(names, allowed) == []


def test_no_module_outside_the_engines_compares_an_engine_name() -> None:
    names = set(ENGINES.builtin_names())
    allowed = ("tango_ci/compile/_", "tango_ci/plugins.py", "tango_ci/runtime/")  # as above
    assert _comparisons_with(names, allowed) == []


@pytest.mark.parametrize("kind", ["project", "runner"])
def test_schema_enums_equal_the_tables(kind: str) -> None:
    on_disk = json.loads((REPO / "schemas" / f"{kind}.schema.json").read_text())
    for path, live in registry_enums(kind).items():
        node = on_disk
        for key in path:
            node = node[key]
        assert node["enum"] == live, f"schemas/{kind}.schema.json {'/'.join(path)}"


def test_the_tables_are_what_the_schemas_list() -> None:
    assert TASKS.builtin_names() == ("classification", "detection")
    assert ENGINES.builtin_names() == ("onnxruntime", "tvm", "tensorrt", "pytorch")
    assert PRECISIONS == ("fp32", "fp16", "bf16", "int8")
    for name, engine in ENGINES.all().items():
        assert engine.capabilities.engine == name
        offered = set().union(*engine.capabilities.precisions.values())
        assert offered <= set(PRECISIONS), name


def test_run_folder_schemas_are_valid_json_schemas() -> None:
    from jsonschema import Draft202012Validator

    for path in sorted((REPO / "schemas" / "run").glob("*.schema.json")):
        Draft202012Validator.check_schema(json.loads(path.read_text()))
