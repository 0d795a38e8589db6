"""The median pruner ignores score gaps that the validation split's size cannot resolve."""

from __future__ import annotations

import optuna
import pytest

from tango_ci.search.pruning import SampledMedianPruner, standard_error
from tango_ci.search.study import make_pruner


def _study(pruner) -> optuna.study.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for score in (0.10, 0.11, 0.12):  # three finished trials, one epoch each
        trial = study.ask()
        trial.report(score, 0)
        study.tell(trial, score)
    return study


def _pruned(study: optuna.study.Study, score: float) -> bool:
    trial = study.ask()
    trial.report(score, 0)
    return trial.should_prune()


def test_a_gap_within_sampling_noise_is_not_pruned():
    # median 0.11 on 600 images: standard error 0.0128, so 0.09 is within two of it
    assert standard_error(0.11, 600) == pytest.approx(0.01277, abs=1e-4)
    assert not _pruned(_study(SampledMedianPruner(600)), 0.09)
    # Optuna's own median pruner stops the same trial
    assert _pruned(_study(optuna.pruners.MedianPruner(n_startup_trials=2)), 0.09)


def test_a_gap_beyond_noise_is_pruned():
    assert _pruned(_study(SampledMedianPruner(600)), 0.07)
    # with many more validation images the same small gap is real
    assert _pruned(_study(SampledMedianPruner(100_000)), 0.09)


def test_a_trial_above_the_median_is_never_pruned():
    assert not _pruned(_study(SampledMedianPruner(100_000)), 0.2)


def test_make_pruner_uses_the_sample_count_when_the_space_gives_one():
    assert isinstance(make_pruner("median", 3, samples=600), SampledMedianPruner)
    assert isinstance(make_pruner("median", 3), optuna.pruners.MedianPruner)
    with pytest.raises(ValueError, match="at least 1"):
        SampledMedianPruner(0)
