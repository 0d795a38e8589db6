"""Hostile project files: each is refused with its one file:line:col line, exit 1, no traceback,
and nothing is written anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import MINIMAL_PROJECT as BASE
from tests.hostile.conftest import Tree, tango_here

STORAGE_ONLY = (
    "a project file names only an SQLite file inside the repository "
    "(sqlite:///relative/path.db); give a database server on the command line "
    "(tango search --storage URL), never in a file a pull request can change"
)

CASES = {
    # issue 10: NaN passed the schema (bounds are false for NaN) and reached decision.json
    "nan-split": (
        BASE.replace("  synth:", "  split: {val: .nan}\n  synth:"),
        "6:16: '.nan' is not a finite number",
    ),
    "inf-latency": (
        BASE + "    constraints: {latency_ms: .inf}\n",
        "11:31: '.inf' is not a finite number",
    ),
    # issue 10: 16.0 passed as an integer and crashed later
    "float-size": (
        BASE.replace("  synth:", "  image_size: 16.0\n  synth:"),
        "6:15: data.image_size: expected integer, got number 16.0",
    ),
    # issue 10: "x\n" passed ^...$ and created runs/x\n/
    "name-newline": (
        BASE.replace("name: demo", 'name: "demo\\n"'),
        "1:7: name: 'demo\\n' is not a slug: lowercase letters, digits and dashes, "
        "starting and ending with a letter or digit",
    ),
    "epochs-huge": (
        BASE + "search: {epochs: 100000}\n",
        "11:18: search.epochs: must be <= 1000, got 100000",
    ),
    # issue 10: 3000-deep [[[ was a RecursionError traceback
    "deep-flow": ("x: " + "[" * 3000 + "]" * 3000 + "\n", "1:1: nesting deeper than 40 levels"),
    "deep-block": (
        "".join("  " * i + f"k{i}:\n" for i in range(60)) + "  " * 60 + "v: 1\n",
        "42:83: nesting deeper than 40 levels",
    ),
    "laughs": (
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
        "1:32: document expands to more than 20000 values (aliases nested too deep?); "
        "refusing to load it",
    ),
    "python-tag": (
        BASE.replace("name: demo", "name: !!python/object/apply:os.system ['touch PWNED']"),
        "1:7: unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'",
    ),
    "merge-key": (
        "base: &b {name: demo}\n<<: *b\n",
        "2:1: merge keys ('<<') are not supported; write the fields out",
    ),
    "dup-key": (BASE + "task: detection\n", "11:1: duplicate key 'task' (first set on line 2)"),
    "two-docs": (BASE + "---\n" + BASE, "12:1: expected one YAML document, found several"),
    "data-abs": (
        BASE.replace("path: data", "path: /etc"),
        "4:9: data.path: '/etc' is outside the repository; use a path inside it",
    ),
    "data-dotdot": (
        BASE.replace("path: data", "path: ../../../etc"),
        "4:9: data.path: '../../../etc' leads outside the repository; use a path inside it",
    ),
    "pretrained-out": (
        BASE + "train: {pretrained: ../../../etc/passwd}\n",
        "11:21: train.pretrained: '../../../etc/passwd' leads outside the "
        "repository; use a path inside it",
    ),
    "runner-path": (
        BASE.replace("runner: local-cpu", "runner: ../../etc/passwd"),
        "9:13: targets[0].runner: '../../etc/passwd' is not the name of a file "
        "runners/<runner>.yaml, without the extension",
    ),
    "description-long": (
        BASE + "description: " + "x" * 20000 + "\n",
        "11:14: description: is longer than the 10000 characters allowed",
    ),
    "seed-negative": (BASE + "search: {seed: -1}\n", "11:16: search.seed: must be >= 0, got -1"),
    "batch-bool": (
        BASE + "train: {batch: true}\n",
        "11:16: train.batch: expected integer, got boolean true",
    ),
    "storage-long": (
        BASE + "search: {storage: " + "s" * 5000 + "}\n",
        "11:19: search.storage: is longer than the 4096 characters allowed",
    ),
    # control characters and over-long names reached the file system: a traceback, or a
    # folder whose name held a newline
    "data-nul": (
        BASE.replace("path: data", 'path: "da\\0ta"'),
        "4:9: data.path: contains a control character; use a plain file name",
    ),
    "data-newline": (
        BASE.replace("path: data", 'path: "da\\nta"'),
        "4:9: data.path: contains a control character; use a plain file name",
    ),
    "data-name-long": (
        BASE.replace("path: data", "path: " + "c" * 300),
        "4:9: data.path: has a name longer than 255 bytes",
    ),
    # a pull request pointed the search at a database server, or wrote a study file anywhere
    "storage-server": (
        BASE + "search: {storage: 'postgresql://evil.example/db'}\n",
        "11:19: search.storage: " + STORAGE_ONLY,
    ),
    "storage-absolute": (
        BASE + "search: {storage: 'sqlite:////tmp/outside/evil.db'}\n",
        "11:19: search.storage: " + STORAGE_ONLY,
    ),
    "storage-dotdot": (
        BASE + "search: {storage: 'sqlite:///../../../evil.db'}\n",
        "11:19: search.storage: '../../../evil.db' leads outside the repository; use a path "
        "inside it",
    ),
    # a key that held a newline printed a line of its own: a forged workflow command
    "key-newline": (
        BASE + '"zz\\n::error::forged\\e[2J": 1\n',
        "11:1: zz\\n::error::forged\\x1b[2J: unknown field 'zz\\n::error::forged\\x1b[2J'",
    ),
    "targets-many": (
        BASE.split("targets:")[0]
        + "targets:\n"
        + "".join(
            f"  - {{name: t{i}, runner: local-cpu, engine: onnxruntime}}\n" for i in range(70)
        ),
        "7:1: targets: has more than the 64 items allowed",
    ),
    "top-list": ("- a\n- b\n", "1:1: top level must be a mapping, got a list"),
}


def _validate(root: Path, path: Path):
    result = tango_here("validate", str(path), cwd=root)
    return result


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_with_its_line(spec_repo: Path, case: str) -> None:
    text, expected = CASES[case]
    folder = spec_repo / "projects" / case
    folder.mkdir()
    (folder / "project.yaml").write_text(text, encoding="utf-8")
    tree = Tree(spec_repo)
    result = _validate(spec_repo, folder / "project.yaml")
    assert result.code == 1
    assert result.stdout.splitlines() == [f"projects/{case}/project.yaml:{expected}"]
    assert result.stderr.strip() == "1 problem(s)"
    tree.assert_unchanged()
    assert not (spec_repo / "PWNED").exists()


def test_run_refuses_with_one_error_line(spec_repo: Path) -> None:
    """The pipeline commands print the same problem as one `error:` line, and make no run."""
    folder = spec_repo / "projects" / "demo"
    folder.mkdir()
    (folder / "project.yaml").write_text(CASES["nan-split"][0])
    result = tango_here("run", "projects/demo", cwd=spec_repo)
    assert result.code == 1
    assert result.error_line == "projects/demo/project.yaml:6:16: '.nan' is not a finite number"
    assert not (spec_repo / "runs").exists()


def test_symlinked_spec_is_refused_without_echoing_its_target(
    spec_repo: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "elsewhere.yaml"
    secret.write_text("name: demo\ntask: classification\npassword: hunter2\n")
    folder = spec_repo / "projects" / "linked"
    folder.mkdir()
    (folder / "project.yaml").symlink_to(secret)
    result = _validate(spec_repo, folder / "project.yaml")
    assert result.code == 1
    assert result.stdout.splitlines() == [
        "projects/linked/project.yaml: is a symbolic link; spec files must be regular files "
        "in the repository"
    ]
    assert "hunter2" not in result.stdout + result.stderr


def test_spec_linked_to_dev_zero_is_refused(spec_repo: Path) -> None:
    folder = spec_repo / "projects" / "zero"
    folder.mkdir()
    (folder / "project.yaml").symlink_to("/dev/zero")
    result = _validate(spec_repo, folder / "project.yaml")
    assert result.code == 1
    assert result.stdout.splitlines() == [
        "projects/zero/project.yaml: is a symbolic link; spec files must be regular files in "
        "the repository"
    ]


def test_linked_project_folder_is_refused(spec_repo: Path, tmp_path: Path) -> None:
    real = tmp_path / "real-project"
    real.mkdir()
    (real / "project.yaml").write_text(BASE)
    (spec_repo / "projects" / "demo").symlink_to(real, target_is_directory=True)
    result = tango_here("run", "projects/demo", cwd=spec_repo)
    assert result.code == 1
    assert result.error_line == (
        "projects/demo/project.yaml: its folder is a symbolic link; "
        "project folders must be real folders of the repository"
    )


def test_data_link_loop_is_refused(spec_repo: Path) -> None:
    folder = spec_repo / "projects" / "demo"
    folder.mkdir()
    (folder / "project.yaml").write_text(
        BASE.replace("  synth: {images_per_class: 10, size: 16}\n", "")
    )
    (folder / "data").symlink_to(folder / "data")
    result = _validate(spec_repo, folder / "project.yaml")
    assert result.code == 1
    assert result.stdout.splitlines() == [
        "projects/demo/project.yaml:4:9: data.path: 'data' is a symbolic link loop"
    ]


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec, so
# a child of a large pytest process would report the parent's peak
ALIAS_BOMB_SCRIPT = """
import re, sys, time
from pathlib import Path
from tango_ci import api
started = time.perf_counter()
problems = api.validate([Path(sys.argv[1])], repo_root=Path(sys.argv[2]))
elapsed = time.perf_counter() - started
status = Path("/proc/self/status").read_text()
peak_mb = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024
print(f"{elapsed:.3f} {peak_mb:.1f}")
print(problems[0].format())
"""


def test_alias_bomb_is_refused_fast_and_small(spec_repo: Path) -> None:
    """issue 10: a 957 KB file made `tango validate` use 22 GB; now about 1 s and under 300 MB."""
    folder = spec_repo / "projects" / "bomb"
    folder.mkdir()
    big = "a" * (900 * 1024)
    text = f'x: &a "{big}"\ndescription: [' + ", ".join(["*a"] * 19000) + "]\n"
    (folder / "project.yaml").write_text(text)
    assert 900_000 < len(text) < 1_000_000
    completed = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            ALIAS_BOMB_SCRIPT,
            str(folder / "project.yaml"),
            str(spec_repo),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert completed.returncode == 0, completed.stderr
    timing, message = completed.stdout.splitlines()
    elapsed, peak_mb = map(float, timing.split())
    assert message == (
        "projects/bomb/project.yaml:1:4: document expands to more than 4194304 "
        "bytes of text (an alias repeating a large value?); refusing to load it"
    )
    assert elapsed < 15.0  # ~1 s alone, 3 s beside a loaded suite; the expansion took minutes
    assert peak_mb < 300  # of the whole interpreter, imports included


def test_every_number_and_count_has_a_bound() -> None:
    """A maximum on every count: each number, string and list of both schemas is bounded."""
    from tango_ci.spec._schema import load_schema

    unbounded = []

    def walk(node, where: str) -> None:
        if isinstance(node, dict):
            types = node.get("type")
            types = types if isinstance(types, list) else [types]
            if (
                ({"integer", "number"} & set(types))
                and "maximum" not in node
                and "exclusiveMaximum" not in node
            ):
                unbounded.append(f"{where} (no maximum)")
            if "string" in types and not ({"maxLength", "pattern", "enum"} & set(node)):
                unbounded.append(f"{where} (no maxLength)")
            if "array" in types and "maxItems" not in node and not node.get("uniqueItems"):
                unbounded.append(f"{where} (no maxItems)")
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}[{index}]")

    for kind in ("project", "runner"):
        walk(load_schema(kind), kind)
    assert unbounded == []


def test_patterns_match_the_whole_value(spec_repo: Path) -> None:
    """A runner name with a trailing newline is not a file name (runs/ paths, CI labels)."""
    from tango_ci.spec._yaml import load_located  # noqa: F401  (the loader under test)

    folder = spec_repo / "projects" / "demo"
    folder.mkdir()
    (folder / "project.yaml").write_text(
        BASE.replace("runner: local-cpu", 'runner: "local-cpu\\n"')
    )
    started = time.perf_counter()
    result = _validate(spec_repo, folder / "project.yaml")
    assert time.perf_counter() - started < 30
    assert result.stdout.splitlines() == [
        "projects/demo/project.yaml:9:13: targets[0].runner: 'local-cpu\\n' is not the name of a "
        "file runners/<runner>.yaml, without the extension"
    ]
