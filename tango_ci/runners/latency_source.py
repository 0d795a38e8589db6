"""Where a target's latency comes from when the search or specialisation judges a network.

A latency taken on the wrong machine is worse than none: a Raspberry Pi target timed on the
training server's CPU prunes and picks networks for a device nobody measured. So a target is
measured on this host only when this host passes ``tango runner check`` for the target's
runner; otherwise its latency is predicted by that runner's latency model
(``runners/<runner>/latency/``, made on the device), and with no model the work is refused
with one line that names the runner and the command that makes one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from tango_ci.exceptions import TangoError
from tango_ci.latency import LatencyModel, LatencyModelError, load_model
from tango_ci.latency.records import model_file
from tango_ci.spec import RunnerSpec, TargetSpec

MEASURED = "measured"
PREDICTED = "predicted"


class NoLatencySource(TangoError):
    _template = (
        "target {target}: runner {runner} is not this host ({why}), so its latency cannot be "
        "measured here, and runners/{runner}/latency/ has no latency model for {engine} "
        "{precision}; make one on that device with `tango runner profile runners/{runner}.yaml`"
        ", or run this stage on the runner"
    )


@dataclass(frozen=True)
class LatencySource:
    """How one target's latency is obtained: measured here, or predicted by ``model``."""

    kind: str  # measured | predicted
    runner: str
    why: str  # one phrase for the report: "runner check passed here", "X's latency model; ..."
    model: Path | None = None

    @property
    def measured(self) -> bool:
        return self.kind == MEASURED


@functools.lru_cache(maxsize=32)
def _check(path: str, text: str) -> tuple[bool, str]:
    """(passes, first error) of ``tango runner check`` for the runner file with ``text``."""
    from tango_ci.runners.check import check_runner
    from tango_ci.spec import load_runner

    findings = check_runner(load_runner(Path(path)))
    errors = [f"{f.what}: {f.message}" for f in findings if f.level == "error"]
    return (not errors, errors[0] if errors else "")


def runner_here(runner: RunnerSpec) -> tuple[bool, str]:
    """Whether this host passes ``tango runner check`` for ``runner`` (cached per file content),
    and the first failed check when it does not."""
    if runner.path is None:
        return False, "the runner was not loaded from a file"
    return _check(str(runner.path), runner.path.read_text(encoding="utf-8", errors="replace"))


def latency_model_path(runner: RunnerSpec, engine: str, precision: str) -> Path | None:
    """The runner's latency model for ``engine`` and ``precision``, when one was made."""
    if runner.path is None:
        return None
    path = model_file(runner.path, engine, precision)
    return path if path.is_file() and not path.is_symlink() else None


def predictable(target: TargetSpec, runner: RunnerSpec) -> list[tuple[str, str]]:
    """The (engine, precision) builds of ``target`` whose latency the runner's models predict:
    the target's own, or for ``engine: auto`` each candidate that has a model."""
    from tango_ci.compile import AUTO, auto_candidates

    concrete = auto_candidates(target, runner) if target.engine == AUTO else [target]
    return [
        (c.engine, c.precision)
        for c in concrete
        if latency_model_path(runner, c.engine, c.precision) is not None
    ]


@functools.lru_cache(maxsize=64)
def _load(path: str, mtime_ns: int, size: int) -> LatencyModel:
    return load_model(Path(path))


def latency_model(runner: RunnerSpec, engine: str, precision: str) -> LatencyModel:
    """The runner's latency model for ``engine`` and ``precision``, checked (schema, and made
    for this runner, engine and precision); cached while the file is unchanged."""
    path = latency_model_path(runner, engine, precision)
    if path is None:
        raise TangoError(
            f"runner {runner.name} has no latency model for {engine} {precision}; make one "
            f"on that device with `tango runner profile runners/{runner.name}.yaml`"
        )
    stat = path.stat()
    model = _load(str(path), stat.st_mtime_ns, stat.st_size)
    made_for = (model.runner, model.engine, model.precision)
    if made_for != (runner.name, engine, precision):
        raise LatencyModelError(
            source=model.source,
            reason=f"made for runner {made_for[0]} {made_for[1]} {made_for[2]}, "
            f"not {runner.name} {engine} {precision}",
        )
    return model


def latency_source(target: TargetSpec, runner: RunnerSpec) -> LatencySource:
    """Measured here when this host is the target's runner; else the runner's latency model;
    else :class:`NoLatencySource`."""
    here, why = runner_here(runner)
    if here:
        return LatencySource(MEASURED, runner.name, "runner check passed here")
    builds = predictable(target, runner)
    if builds:
        for engine, precision in builds:
            latency_model(runner, engine, precision)  # a broken model is refused now
        engine, precision = builds[0]
        return LatencySource(
            PREDICTED,
            runner.name,
            f"{runner.name}'s latency model; not this host: {why}",
            latency_model_path(runner, engine, precision),
        )
    from tango_ci.compile import AUTO

    raise NoLatencySource(
        target=target.name,
        runner=runner.name,
        why=why,
        engine="any engine of" if target.engine == AUTO else target.engine,
        precision=target.precision,
    )
