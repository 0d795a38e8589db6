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
    why: str  # one phrase for the report: "runner check passed here", "...model (file)"
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
    path = runner.path.parent / runner.name / "latency" / f"{engine}-{precision}.json"
    return path if path.is_file() and not path.is_symlink() else None


def latency_source(target: TargetSpec, runner: RunnerSpec) -> LatencySource:
    """Measured here when this host is the target's runner; else the runner's latency model;
    else :class:`NoLatencySource`."""
    here, why = runner_here(runner)
    if here:
        return LatencySource(MEASURED, runner.name, "measured here (runner check passed)")
    model = latency_model_path(runner, target.engine, target.precision)
    if model is not None:
        return LatencySource(
            PREDICTED, runner.name, f"predicted by {runner.name}'s latency model", model
        )
    raise NoLatencySource(
        target=target.name,
        runner=runner.name,
        why=why,
        engine=target.engine,
        precision=target.precision,
    )


def require_measurable(target: TargetSpec, runner: RunnerSpec) -> LatencySource:
    """The target's latency source, refusing a predicted one until predictors exist for the
    caller (the prediction itself lands with the runner latency models)."""
    source = latency_source(target, runner)
    if not source.measured:
        raise TangoError(
            f"target {target.name}: runner {runner.name} is not this host and latency models "
            f"cannot be read yet ({source.model}); run this stage on the runner"
        )
    return source
