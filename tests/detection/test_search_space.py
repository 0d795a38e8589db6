"""The detection search space lists each network it can suggest exactly once, and refuses
baselines (not supported for detection yet)."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest

from tango_ci.detection.search_space import DetectionSpace
from tango_ci.exceptions import TangoError
from tango_ci.spec.models import Baseline, SearchSpec, TrainSpec


def _space(sizes: list[int]) -> DetectionSpace:
    """A space without a run folder: only what ``suggest`` and ``architectures`` read."""
    space = object.__new__(DetectionSpace)
    space.spec = SimpleNamespace(  # type: ignore[assignment]
        search=SearchSpec(families=("yolov8", "yolo11"), levels=("xs", "s")), train=TrainSpec()
    )
    space.sizes = sizes
    return space


def test_architectures_are_distinct_and_complete() -> None:
    space = _space([64, 96])
    architectures = space.architectures()
    keys = [space.key(a) for a in architectures]
    assert len(keys) == len(set(keys)) == 2 * 2 * 3 * 3 * 2  # family level depth width size
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for params in architectures:  # each one is a valid suggestion, under the same key
        study.enqueue_trial(params)
        trial = study.ask()
        assert space.key(space.suggest(trial)) == space.key(params)
        study.tell(trial, 0.0)
    for _ in range(300):  # and the sampler suggests nothing outside them
        trial = study.ask()
        assert space.key(space.suggest(trial)) in keys
        study.tell(trial, 0.0)


def test_baselines_are_refused_for_detection() -> None:
    spec = SimpleNamespace(search=SearchSpec(baselines=(Baseline("yolov8", "xs"),)))
    with pytest.raises(TangoError, match=r"^search\.baselines: .*not supported for detection"):
        DetectionSpace(SimpleNamespace(spec=spec), None)  # type: ignore[arg-type]
