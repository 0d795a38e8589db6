"""The few git operations the registry and the GitOps side need, on the real ``git`` command.

Below both :mod:`tango_ci.registry` and :mod:`tango_ci.gitops`, it knows nothing of either.
Reports are committed to their branch with plumbing (a private index), so the working tree
and the checked-out branch of the repository are never touched.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from tango_ci.exceptions import TangoError

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
ZERO = "0" * 40
BOT = {
    "GIT_AUTHOR_NAME": "tango-ci",
    "GIT_AUTHOR_EMAIL": "tango-ci@localhost",
    "GIT_COMMITTER_NAME": "tango-ci",
    "GIT_COMMITTER_EMAIL": "tango-ci@localhost",
}
# git sets many GIT_* variables for hooks (GIT_DIR, GIT_QUARANTINE_PATH, push options, ...);
# a hook's children keep only these
_KEPT_GIT_VARIABLES = (
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_ASKPASS",
    "GIT_TERMINAL_PROMPT",
)


def clean_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in _KEPT_GIT_VARIABLES
    }
    for key, value in BOT.items():
        env.setdefault(key, value)
    return env | (extra or {})


def git(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    input: str | None = None,
) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=clean_environment(env),
        input=input,
    )
    if check and result.returncode != 0:
        message = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise TangoError(
            f"git {' '.join(args[:3])} failed in {cwd}: "
            f"{message[-1] if message else 'exit ' + str(result.returncode)}"
        )
    return result.stdout.strip()


def rev_parse(cwd: Path, rev: str) -> str | None:
    out = git(cwd, "rev-parse", "--verify", "--quiet", rev + "^{commit}", check=False)
    return out or None


def is_ancestor(cwd: Path, ancestor: str, descendant: str) -> bool:
    return (
        subprocess.run(
            ["git", "merge-base", "--is-ancestor", ancestor, descendant],
            cwd=cwd,
            capture_output=True,
            env=clean_environment(),
        ).returncode
        == 0
    )


def changed_files(cwd: Path, base: str | None, head: str) -> list[str]:
    """Files that differ between ``base`` (its merge base with ``head``) and ``head``."""
    if rev_parse(cwd, head) is None:
        raise TangoError(f"unknown head revision '{head}'")
    if base is None or base == ZERO:
        base = EMPTY_TREE
    elif rev_parse(cwd, base) is None:
        raise TangoError(
            f"unknown base revision '{base}' (a shallow clone? check out with fetch-depth: 0)"
        )
    else:
        base = git(cwd, "merge-base", base, head, check=False) or base
    out = git(cwd, "diff", "--name-only", "--no-renames", base, head)
    return [line for line in out.splitlines() if line]


def show_file(cwd: Path, rev: str, path: str) -> str | None:
    result = subprocess.run(
        ["git", "show", f"{rev}:{path}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=clean_environment(),
    )
    return result.stdout if result.returncode == 0 else None


def blob_size(cwd: Path, rev: str, path: str) -> int | None:
    """The size of ``path`` at ``rev`` without reading it; None when there is no such blob."""
    kind = git(cwd, "cat-file", "-t", f"{rev}:{path}", check=False)
    if kind != "blob":
        return None
    return int(git(cwd, "cat-file", "-s", f"{rev}:{path}"))


def read_blob(cwd: Path, rev: str, path: str, limit: int) -> bytes | None:
    """The bytes of ``path`` at ``rev``, or None when absent; a larger blob is refused unread."""
    size = blob_size(cwd, rev, path)
    if size is None:
        return None
    if size > limit:
        raise TangoError(
            f"{path} at {rev[:10]} is {size} bytes, more than the {limit} allowed; it was not read"
        )
    result = subprocess.run(
        ["git", "cat-file", "blob", f"{rev}:{path}"],
        cwd=cwd,
        capture_output=True,
        env=clean_environment(),
    )
    return result.stdout if result.returncode == 0 else None


def tree_id(cwd: Path, rev: str, path: str = "") -> str:
    """The tree (or blob) id of ``path`` at ``rev``; '' when it is absent."""
    return git(cwd, "rev-parse", "--verify", "--quiet", f"{rev}:{path}", check=False)


def first_parent_trees(cwd: Path, head: str, depth: int = 1000) -> set[str]:
    """The root trees of ``head`` and its first parents: what main looked like after each
    merge (a squash or rebase merge of a branch has the branch's tree when nothing else
    landed meanwhile)."""
    out = git(cwd, "log", "--first-parent", f"-n{depth}", "--format=%T", head, check=False)
    return set(out.split())


def ref_names(cwd: Path, *prefixes: str) -> list[str]:
    """Full names of the refs under ``prefixes`` (e.g. ``refs/heads/reports/``)."""
    out = git(cwd, "for-each-ref", "--format=%(refname)", *prefixes)
    return [line for line in out.splitlines() if line]


def commit_files(
    cwd: Path, branch: str, files: dict[str, bytes], message: str, *, amend: bool = False
) -> str:
    """Commit ``files`` (path -> content) as the whole tree of a new commit on ``branch``.

    The branch continues origin's branch of that name when there is no local one, and is
    created without a parent when neither exists; ``amend`` replaces its tip (a commit this
    process just made). Returns the commit id.
    """
    local = rev_parse(cwd, f"refs/heads/{branch}")
    tip = local or rev_parse(cwd, f"refs/remotes/origin/{branch}")  # a fresh clone's view
    parent = rev_parse(cwd, f"{tip}^") if amend and tip else tip
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(cwd, "read-tree", "--empty", env=env)
        for path, content in sorted(files.items()):
            blob = _hash_blob(cwd, content)
            git(cwd, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = git(cwd, "write-tree", env=env)
    args = ["commit-tree", tree, "-m", message] + (["-p", parent] if parent else [])
    commit = git(cwd, *args)
    git(cwd, "update-ref", f"refs/heads/{branch}", commit, local or ZERO)
    return commit


def _hash_blob(cwd: Path, content: bytes) -> str:
    result = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        cwd=cwd,
        input=content,
        capture_output=True,
        env=clean_environment(),
    )
    if result.returncode != 0:
        raise TangoError(f"git hash-object failed in {cwd}: {result.stderr.decode().strip()}")
    return result.stdout.decode().strip()


def has_remote(cwd: Path, remote: str = "origin") -> bool:
    return remote in git(cwd, "remote").split()
