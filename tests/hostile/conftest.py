"""The hostile corpus: inputs a stranger can write, each refused with one line and exit 1.

Every case asserts the exit code, the exact message, that no traceback was printed, and that
nothing was written outside where the command may write (``Tree`` snapshots a folder).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, git, spec_repo, write_project  # noqa: F401  (fixtures)


def write_export(folder: Path, tasks: object, name: str = "export.json") -> Path:
    """A Label Studio export of ``tasks`` in ``folder``."""
    import json

    path = folder / name
    path.write_text(json.dumps(tasks))
    return path


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def error_line(self) -> str:
        """The one `error: ...` line, which must end stderr (stage logs may come before it)."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1, f"expected one error line on stderr, got:\n{self.stderr}"
        assert lines[-1] == errors[0], f"the error line is not the last one:\n{self.stderr}"
        return errors[0][len("error: ") :]


def tango(
    *args: str, cwd: Path, env: dict | None = None, timeout: float = 300, stdin: str | None = None
) -> Result:
    """Run the installed `tango` in a fresh interpreter, isolated from the working directory.

    ``python -I`` keeps the working directory (a possibly hostile checkout) off sys.path.
    """
    environment = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1", **(env or {})}
    # -P where the package comes from PYTHONPATH (a GPU machine without an install): the
    # working directory stays off sys.path either way
    isolation = "-P" if environment.get("PYTHONPATH") else "-I"
    completed = subprocess.run(
        [sys.executable, isolation, "-m", "tango_ci", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        input=stdin,
    )
    result = Result(completed.returncode, completed.stdout, completed.stderr)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def tango_here(*args: str, cwd: Path, env: dict | None = None) -> Result:
    """:func:`tango` through the same entry point (``tango_ci.cli.main``) in this process: a
    fresh `tango` process spends most of its seconds importing torch. For cases about what a
    command reads and refuses; a case where the code could run what it reads (a pickle), or
    that needs another process (a lock's holder), runs :func:`tango`. An exception escaping
    ``main`` is written out as the traceback a process would print."""
    import contextlib
    import io
    import traceback

    from tango_ci.cli import main

    out, err = io.StringIO(), io.StringIO()
    before, saved = Path.cwd(), dict(os.environ)
    os.environ.update({"COLUMNS": "400", "NO_COLOR": "1", **(env or {})})
    os.chdir(cwd)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(list(args))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except Exception as exc:  # what a process would print as a traceback
        code = 1
        err.write("Traceback\n" + "".join(traceback.format_exception(exc)))
    finally:
        os.chdir(before)
        os.environ.clear()
        os.environ.update(saved)
    result = Result(code, out.getvalue(), err.getvalue())
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def refused(result: Result, message: str, *, code: int = 1) -> None:
    """Exit ``code`` and exactly one stderr line ``error: <message>``."""
    assert result.code == code, (result.code, result.stdout, result.stderr)
    assert result.error_line == message


class Tree:
    """A snapshot of every path under ``root`` (with sizes and mtimes) to compare later."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.before = self._scan()

    def _scan(self) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        for folder, dirs, files in os.walk(self.root, followlinks=False):
            for name in dirs + files:
                path = Path(folder) / name
                stat = path.lstat()
                # a folder changes when something is added inside it; that entry is reported
                mark = (
                    (0, 0)
                    if path.is_dir() and not path.is_symlink()
                    else (stat.st_size, stat.st_mtime_ns)
                )
                found[str(path.relative_to(self.root))] = mark
        return found

    def changes(self, allowed: tuple[str, ...] = ()) -> list[str]:
        """Paths added, removed or modified since the snapshot, except under ``allowed``."""
        after = self._scan()
        changed = [p for p in set(self.before) | set(after) if self.before.get(p) != after.get(p)]
        return sorted(
            p
            for p in changed
            if not any(p == a or p.startswith(a.rstrip("/") + "/") for a in allowed)
        )

    def assert_unchanged(self, allowed: tuple[str, ...] = ()) -> None:
        assert self.changes(allowed) == []


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the repository that no command may ever write into."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious\n")
    return folder
