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


def _record(key: str, score: float) -> dict:
    return {"architecture_key": key, "score": score}


def test_architectures_the_validation_split_cannot_tell_from_the_winner_are_named():
    from tango_ci.stages.search import tied_with

    best = _record("resnet-s", 0.19)
    feasible = [best, _record("resnet-m", 0.17), _record("resnet-m", 0.12), _record("xs", 0.1)]
    # two standard errors of 0.19 on 600 images: 0.032, so 0.17 ties and 0.10 does not
    assert tied_with(best, feasible, 600) == {"keys": ["resnet-m"], "margin": 0.032}
    # on 60,000 images the margin is 0.0032 and nothing ties; without a sample count, no claim
    assert tied_with(best, feasible, 60_000) is None
    assert tied_with(best, feasible, None) is None


def test_the_report_says_when_the_choice_was_a_guess():
    from tango_ci.stages.report import _tied_line

    best = {"score_label": "val accuracy"}
    line = "".join(_tied_line({"keys": ["resnet-m", "resnet-xs"], "margin": 0.032}, best))
    assert "could not tell this choice from resnet-m, resnet-xs" in line
    assert "within 0.032" in line and "`search.epochs`" in line
    assert _tied_line(None, best) == []


def test_the_report_says_how_a_tie_was_settled_and_when_it_was_not():
    from tango_ci.stages.report import _finals_line, _tied_line

    rounds = [{"epochs": 6, "scores": {"resnet-xs": 0.2, "resnet-s": 0.31, "mobilenetv3-s": 0.15}}]
    line = "".join(_finals_line(rounds))
    assert (
        "trained again for longer: after 6 epochs resnet-s 0.31, resnet-xs 0.2, mobilenetv3-s"
        in line
    )
    tied = {"keys": ["resnet-m"], "margin": 0.03, "epochs": 12}
    assert "even after 12 epochs each" in "".join(_tied_line(tied, {"score_label": "accuracy"}))
    assert _finals_line([]) == []
