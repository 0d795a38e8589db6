"""`tango gitops local`: the GitOps loop on one machine, without a forge.

A bare repository gets a ``pre-receive`` hook that refuses a push to ``reports/*`` from anyone
but its own worker (promotion trusts those branches), and a ``post-receive`` hook that queues
one job per pushed branch and returns at once; a background worker (one at a time, under a file lock) takes the jobs in
order and does on this host what the workflows do:

- a push to a branch other than main: plan the change against main, run the pipeline of
  each planned project and publish it (:func:`tango_ci.gitops.publish.publish_run`): its
  artifacts to the DVC remote, its report to the ``reports/<project>`` branch of the bare
  repository;
- a push to main: run and publish each changed project that has no report of this push,
  then register and promote what every merged report passed and is not registered yet
  (:func:`tango_ci.gitops.promote.promote_pending`); the registry tags are pushed into the
  bare repository.

The publishing and the promotion are the ones `tango ci publish` and `tango ci promote` run;
only the running of the pipeline is this module's own.

A pushed branch is untrusted: its clone is data. The hook, the worker and each pipeline run
the installed tool as ``python -I`` (the working directory and ``PYTHON*`` variables never
reach ``sys.path``), from a folder outside the clone, with the project given by its absolute
path; the run folders and logs are written outside the clone too, and the one file written
into it (``.dvc/config.local``) is never written through a link.

Everything lives under ``<bare>/tango/``: ``push-token`` (what the worker's pushes of reports
carry), ``queue/`` (jobs as JSON, with their state),
``work/`` (a clone per job), ``runs/`` (a run folder and log per job), ``dvc-storage/`` (the
DVC remote) and ``worker.log``.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from tango_ci.exceptions import TangoError
from tango_ci.gitrepo import ZERO, clean_environment, git, rev_parse
from tango_ci.printable import printable
from tango_ci.rundir import write_json

if TYPE_CHECKING:
    from tango_ci.gitops.publish import Publication

MAIN = "main"
STATES = ("queued", "running", "done", "failed")
TOKEN_VARIABLE = "TANGO_FORGE_PUSH_TOKEN"  # set by the worker while it pushes a report
PRE_RECEIVE = """#!/bin/sh
# TANGO-CI: reports/* are written by this forge's worker only; promotion trusts them.
token=$(cat {token} 2>/dev/null)
while read -r old new ref; do
  case "$ref" in
    refs/heads/reports/*)
      if [ -z "$token" ] || [ "${variable}" != "$token" ]; then
        echo "tango-ci: $ref is written by the forge's worker only; push refused" >&2
        exit 1
      fi;;
  esac
done
"""


def _home(bare: Path) -> Path:
    return Path(bare) / "tango"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def create(bare: Path, *, python: str = sys.executable, run_args: tuple[str, ...] = ()) -> Path:
    """Create the bare repository with its hook and folders; refuses an existing path."""
    bare = Path(bare).resolve()
    if bare.exists() and any(bare.iterdir()):
        raise TangoError(f"{bare} exists and is not empty; choose a new path")
    bare.mkdir(parents=True, exist_ok=True)
    git(bare, "init", "--quiet", "--bare", f"--initial-branch={MAIN}")
    home = _home(bare)
    for sub in ("queue", "work", "runs", "dvc-storage"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    token = home / "push-token"
    token.touch(mode=0o600)
    token.write_text(secrets.token_hex(32))
    guard = bare / "hooks" / "pre-receive"
    guard.write_text(
        PRE_RECEIVE.replace("{token}", shlex.quote(str(token))).replace(
            "{variable}", TOKEN_VARIABLE
        )
    )
    hook = bare / "hooks" / "post-receive"
    hook.write_text(
        "#!/bin/sh\n# TANGO-CI: queue the pushed refs and return at once.\n"
        f"exec {shlex.quote(python)} -I -m tango_ci.gitops.local hook "
        f"{shlex.quote(str(bare))}\n"
    )
    for script in (guard, hook):
        script.chmod(0o755)
    (home / "config.json").write_text(
        json.dumps({"python": python, "run_args": list(run_args)}, indent=2) + "\n"
    )
    return bare


def tool_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the tool's own processes: no GIT_* of the hook, no PYTHON*."""
    env = {
        k: v
        for k, v in clean_environment().items()
        if not k.startswith("PYTHON") and k != TOKEN_VARIABLE
    }
    return env | (extra or {})


@contextmanager
def report_pushes(bare: Path) -> Iterator[None]:
    """While inside, this process's pushes to ``reports/*`` pass the pre-receive hook."""
    token = _home(bare) / "push-token"
    os.environ[TOKEN_VARIABLE] = token.read_text().strip() if token.is_file() else ""
    try:
        yield
    finally:
        os.environ.pop(TOKEN_VARIABLE, None)


def queue_push(bare: Path, lines: list[str]) -> list[Path]:
    """The hook's work: one job per updated branch (reports/* and deletions are ignored)."""
    home = _home(bare)
    jobs = []
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            continue
        old, new, ref = parts
        if not ref.startswith("refs/heads/") or new == ZERO:
            continue
        branch = ref[len("refs/heads/") :]
        if branch.startswith("reports/"):
            continue
        kind = "promote" if branch == MAIN else "report"
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
        job = {
            "id": f"{stamp}-{kind}",
            "kind": kind,
            "branch": branch,
            "before": old,
            "after": new,
            "state": "queued",
            "queued_at": _now(),
            "log": [],
            "results": [],
        }
        path = home / "queue" / f"{job['id']}.json"
        write_json(path, job)
        jobs.append(path)
    return jobs


def start_worker(bare: Path) -> None:
    """Start the background worker, detached; it exits at once if one is running."""
    home = _home(bare)
    python = json.loads((home / "config.json").read_text())["python"]
    with open(home / "worker.log", "a") as log:  # the worker keeps its own copy
        subprocess.Popen(
            [python, "-I", "-m", "tango_ci.gitops.local", "work", str(bare)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=home,
            env=tool_environment(),
            start_new_session=True,
        )


def _next_job(home: Path) -> Path | None:
    for path in sorted((home / "queue").glob("*.json")):
        if json.loads(path.read_text())["state"] == "queued":
            return path
    return None


def work(bare: Path) -> None:
    """Take queued jobs until none is left; one worker at a time."""
    bare = Path(bare).resolve()
    home = _home(bare)
    with open(home / "worker.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # the running worker takes the new job
        while (path := _next_job(home)) is not None:
            job = json.loads(path.read_text())
            job.update(state="running", started_at=_now())
            write_json(path, job)
            print(
                f"{_now()} job {job['id']}: {job['kind']} {job['branch']} {job['after'][:10]}",
                flush=True,
            )
            try:
                job["results"] = run_job(bare, job, partial(_log, path, job))
                job["state"] = "done"
            except Exception as error:
                job["state"] = "failed"
                job["error"] = f"{type(error).__name__}: {error}"
                print(f"{_now()} job {job['id']} failed: {printable(job['error'])}", flush=True)
            job["finished_at"] = _now()
            write_json(path, job)
    if _next_job(home) is not None:  # queued while this worker was letting go
        work(bare)


def _log(path: Path, job: dict, message: str) -> None:
    line = f"{_now()} {printable(message)}"  # a report's text: one line, no escapes
    job["log"].append(line)
    write_json(path, job)
    print(line, flush=True)


def _checkout(bare: Path, job: dict) -> Path:
    folder = _home(bare) / "work" / job["id"]
    git(bare.parent, "clone", "--quiet", "--no-checkout", str(bare), str(folder))
    git(folder, "checkout", "--quiet", "--detach", job["after"])
    dvc = folder / ".dvc"
    if dvc.is_symlink() or (dvc.exists() and not dvc.is_dir()):
        raise TangoError(
            f"{job['branch']}: .dvc is a symbolic link or not a folder, so the forge cannot set "
            "its DVC remote and cache; the job was refused"
        )
    if dvc.is_dir():  # every job shares the bare repository's remote
        # and keeps its cache in its clone, whatever the branch's .dvc/config says
        _write_new(
            dvc / "config.local",
            f"[core]\n    remote = local\n['remote \"local\"']\n    url = "
            f"{_home(bare) / 'dvc-storage'}\n[cache]\n    dir = {dvc / 'cache'}\n",
        )
    return folder


def _write_new(path: Path, text: str) -> None:
    """Replace whatever the branch put at ``path`` (a link too) with a new file."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def run_job(bare: Path, job: dict, log) -> list[dict]:
    from tango_ci.gitops.plan import make_plan
    from tango_ci.gitops.promote import promote_pending, promotion_lines
    from tango_ci.gitops.reports import find_report, unmerged_reports

    folder = _checkout(bare, job)
    base = rev_parse(folder, f"origin/{MAIN}") if job["kind"] == "report" else job["before"]
    plan = make_plan(folder, base, "HEAD")
    if not plan.projects and job["kind"] == "report":
        log("nothing to do: no project, data pointer or used runner file changed")
        return []
    results = []
    for entry in plan.projects:
        project = entry["project"]
        log(f"{project}: {'; '.join(plan.reasons[project])}")
        if job["kind"] == "promote":
            if find_report(folder, project, job["after"], job["before"]) is None:
                log(f"{project}: no report for a commit of this push; running the pipeline")
                _run_and_publish(bare, folder, entry, job, log)
        else:
            published = _run_and_publish(bare, folder, entry, job, log)
            results.append(
                {
                    "project": project,
                    "report": published.commit,
                    "run": published.results["run"],
                    "passed": published.passed,
                }
            )
    if job["kind"] == "promote":
        results = promote_pending(folder, job["after"], base=job["before"])
        unmerged = [] if results else unmerged_reports(folder, job["after"])
        for line in promotion_lines(results, unmerged=unmerged):
            log(line)
    return results


def _run_and_publish(bare: Path, folder: Path, entry: dict, job: dict, log) -> Publication:
    """Run the project's pipeline on the job's clone, then publish the run.

    The installed tool runs (``python -I``, from the job's runs folder, outside the clone),
    so nothing the branch holds is imported: the clone is only read as a project.
    """
    from tango_ci.dvcstore import pull_pointers
    from tango_ci.gitops.publish import publish_run
    from tango_ci.rundir import find_run

    project = entry["project"]
    pulled = pull_pointers(folder, folder / entry["path"])
    if pulled:
        log(f"{project}: pulled {', '.join(p.name for p in pulled)} from the DVC remote")
    log(f"{project}: tango run {entry['path']}")
    home = _home(bare)
    runs = home / "runs" / job["id"]
    runs.mkdir(parents=True, exist_ok=True)
    config = json.loads((home / "config.json").read_text())
    python = config.get("python") or sys.executable
    result = subprocess.run(
        [
            python,
            "-I",
            "-m",
            "tango_ci",
            "run",
            str(folder / entry["path"]),
            *config.get("run_args", []),
        ],
        cwd=runs,
        capture_output=True,
        text=True,
        env=tool_environment({"TANGO_RUNS_DIR": str(runs)}),
    )
    (runs / f"run-{project}.log").write_text(result.stdout + result.stderr)
    try:
        run_dir = find_run(runs, project, None)
    except TangoError:
        run_dir = None
    if run_dir is None or not (run_dir.stage_dir("gate") / "decision.json").is_file():
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise TangoError(f"{project}: the pipeline stopped before the gate: {tail}")
    with report_pushes(bare):
        published = publish_run(folder, run_dir, job["after"])
    log(
        f"{project}: artifacts stored in the DVC remote; report {published.commit[:10]} "
        f"pushed to {published.branch} (gate {'pass' if published.passed else 'fail'})"
    )
    return published


def status(bare: Path) -> list[dict]:
    """Every job, oldest first: id, kind, branch, state, times, results, error.

    A job left "running" by a worker that died (no worker holds the lock) is marked failed.
    """
    home = _home(Path(bare))
    if not (home / "queue").is_dir():
        raise TangoError(f"{bare} is not a `tango gitops local` repository (no tango/queue)")
    paths = sorted((home / "queue").glob("*.json"))
    jobs = [json.loads(p.read_text()) for p in paths]
    if any(j["state"] == "running" for j in jobs):
        with open(home / "worker.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return jobs  # a worker is at it
            for path, job in zip(paths, jobs, strict=True):
                if job["state"] == "running":
                    job.update(
                        state="failed",
                        finished_at=_now(),
                        error="the worker stopped before finishing this job",
                    )
                    write_json(path, job)
            fcntl.flock(lock, fcntl.LOCK_UN)
    return jobs


def wait(bare: Path, timeout: float = 1800.0) -> list[dict]:
    """Until no job is queued or running (for tests and scripts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = status(bare)
        if all(j["state"] in ("done", "failed") for j in jobs):
            return jobs
        time.sleep(1.0)
    raise TangoError(f"jobs of {bare} still running after {timeout:.0f} s")


def _main(argv: list[str]) -> None:
    command, bare = argv[0], Path(argv[1])
    if command == "hook":
        lines = sys.stdin.read().splitlines()
        if queue_push(bare, lines):
            start_worker(bare)
            print("tango-ci: queued; `tango gitops status` shows progress")
    elif command == "work":
        work(bare)


if __name__ == "__main__":
    _main(sys.argv[1:])
