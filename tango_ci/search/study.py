"""The Optuna study behind the ``trials`` search: sampler, pruner, storage, and the order in
which architectures are tried.

Left to itself a sampler repeats architectures (densenet-m twice in 8 trials), so each distinct
architecture of the space is enqueued once, in a seeded shuffle, with the space's default
hyper-parameters (the project's training settings) where it has them, before the sampler
chooses freely; a later trial that repeats a finished one exactly is not trained again.
"""

from __future__ import annotations

import os
import random
import warnings
from typing import Any

from tango_ci.spec import ProjectSpec

DUPLICATE_OF = "duplicate_of"


def make_sampler(name: str, seed: int, startup: int) -> Any:
    """Samplers read each trial's budget constraint (set with ``Trial.set_constraint``)."""
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, startup))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def make_pruner(name: str, epochs: int, samples: int | None = None) -> Any:
    """``samples``: the validation images behind each score, when the score is an accuracy;
    the median pruner then ignores gaps within its sampling noise (see ``pruning``)."""
    import optuna

    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    if name == "median":
        if samples:
            from tango_ci.search.pruning import SampledMedianPruner

            return SampledMedianPruner(samples)
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def make_storage(url: str) -> Any:
    import optuna

    if not url.startswith(("sqlite", "postgresql", "mysql")):
        return url
    # Heartbeats mark trials of a killed process as failed; the callback retries them.
    interval = int(os.environ.get("TANGO_SEARCH_HEARTBEAT_S", "10"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=interval,
            grace_period=2 * interval,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=2
            ),
        )


def create_study(
    spec: ProjectSpec, study_name: str, storage_url: str, samples: int | None = None
) -> Any:
    """The run's study, created or (same name and storage) loaded to resume; ``samples`` as
    for :func:`make_pruner`."""
    import optuna

    search = spec.search
    multi = search.sampler == "nsga2"
    return optuna.create_study(
        study_name=study_name,
        storage=make_storage(storage_url),
        load_if_exists=True,
        directions=["maximize", "minimize"] if multi else ["maximize"],
        sampler=make_sampler(
            search.sampler, search.seed, startup=min(5, max(1, search.trials // 2))
        ),
        pruner=make_pruner(search.pruner, search.epochs, samples),
    )


def _given_params(trial: Any) -> dict:
    """What a trial was given: its enqueued params while it waits, then its suggested ones."""
    return dict(trial.params) or dict(trial.system_attrs.get("fixed_params", {}))


def enqueue_architectures(study: Any, space: Any, trials: int, seed: int) -> list[str]:
    """Enqueue the architectures no trial of ``study`` has tried or been given yet, in a seeded
    shuffle, as many as the trials still to start; returns their keys.

    Idempotent, so a resumed study enqueues nothing twice: the trials it holds (waiting ones
    included) count against ``trials`` and their architectures are taken. A space without
    ``architectures()`` (a plug-in task's may have none) leaves the order to the sampler; one
    with ``defaults()`` gives each enqueued architecture those hyper-parameters.
    """
    if not hasattr(space, "architectures"):
        return []
    alive = [t for t in study.trials if t.state.name != "FAIL"]
    taken = {space.key(p) for p in map(_given_params, study.trials) if _complete(p, space)}
    order = list(space.architectures())
    random.Random(seed).shuffle(order)
    fresh = [a for a in order if space.key(a) not in taken]
    chosen = fresh[: max(0, trials - len(alive))]
    defaults = space.defaults() if hasattr(space, "defaults") else {}
    for params in chosen:
        study.enqueue_trial(defaults | params, skip_if_exists=True)
    return [space.key(p) for p in chosen]


def _complete(params: dict, space: Any) -> bool:
    """Whether ``params`` name an architecture (a trial that failed before suggesting none)."""
    try:
        space.key(params)
    except KeyError:
        return False
    return True


def same_params(a: dict, b: dict) -> bool:
    """Exactly the same suggestion (floats compared exactly: a sampler repeats them bit for bit
    only when it repeats the trial)."""
    return a.keys() == b.keys() and all(a[k] == b[k] for k in a)


def finished_twin(study: Any, trial: Any, params: dict) -> Any | None:
    """An earlier finished (complete or pruned) trial with exactly ``params``, or None."""
    for other in study.get_trials(deepcopy=False):
        if (
            other.number != trial.number
            and other.state.name in ("COMPLETE", "PRUNED")
            and DUPLICATE_OF not in other.user_attrs
            and same_params(other.params, params)
        ):
            return other
    return None


__all__ = [
    "DUPLICATE_OF",
    "create_study",
    "enqueue_architectures",
    "finished_twin",
    "make_pruner",
    "make_sampler",
    "make_storage",
    "same_params",
]
