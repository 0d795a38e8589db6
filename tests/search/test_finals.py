"""A tied search is settled by training the tied trials longer, within the search's time, and
says so when even that cannot tell them apart."""

from __future__ import annotations

import time

from tango_ci.search import finals


def _record(key: str, score: float, number: int) -> dict:
    return {"architecture_key": key, "score": score, "number": number, "params": {"k": key}}


class Trainer:
    """Scores by (trial label, epochs), as a learning curve would give them; records calls."""

    def __init__(self, curves: dict[str, dict[int, float]]) -> None:
        self.curves, self.calls = curves, []

    def __call__(self, record: dict, epochs: int) -> float:
        self.calls.append((finals.label(record), epochs))
        return self.curves[finals.label(record)][epochs]


def _settle(best, feasible, trainer, epochs=(3, 12), deadline=None):
    lines: list[str] = []
    winner, rounds = finals.settle(best, feasible, 600, trainer, epochs, deadline, lines.append)
    return winner, rounds, lines


def test_a_tie_is_settled_by_the_longer_training_not_by_the_proxy():
    # after 3 epochs all three sit within noise (2 SE of 0.14 on 600 images: 0.028)
    best = _record("mobilenetv3-s", 0.14, 4)
    feasible = [best, _record("resnet-s", 0.135, 2), _record("resnet-xs", 0.13, 7)]
    feasible.append(_record("densenet-xs", 0.08, 1))  # beyond the margin: not a finalist
    trainer = Trainer(
        {"mobilenetv3-s #4": {6: 0.15}, "resnet-s #2": {6: 0.31}, "resnet-xs #7": {6: 0.2}}
    )
    winner, rounds, lines = _settle(best, feasible, trainer)
    assert winner["architecture_key"] == "resnet-s" and winner["number"] == 2
    assert winner["final_score"] == 0.31 and winner["final_epochs"] == 6
    assert rounds == [
        {
            "epochs": 6,
            "scores": {"mobilenetv3-s #4": 0.15, "resnet-s #2": 0.31, "resnet-xs #7": 0.2},
        }
    ]
    assert sorted(trainer.calls) == [
        ("mobilenetv3-s #4", 6),
        ("resnet-s #2", 6),
        ("resnet-xs #7", 6),
    ]
    assert "resnet-s #2 is clear" in lines[-1]
    assert finals.still_tied(winner, rounds, 600) is None


def test_hyper_parameters_that_win_the_short_run_can_lose_the_long_one():
    # the same architecture twice: a low learning rate leads after 6 epochs, not after 12
    best, other = _record("resnet-m", 0.59, 9), _record("resnet-m", 0.57, 5)
    trainer = Trainer({"resnet-m #9": {12: 0.80}, "resnet-m #5": {12: 0.93}})
    winner, rounds, _ = _settle(best, [best, other], trainer, epochs=(6, 15))
    assert winner["number"] == 5 and winner["final_epochs"] == 12
    assert [r["epochs"] for r in rounds] == [12]


def test_a_tie_that_lasts_doubles_the_epochs_up_to_the_cap_and_is_named():
    best = _record("a", 0.5, 0)
    trainer = Trainer({"a #0": {6: 0.6, 12: 0.7}, "b #1": {6: 0.59, 12: 0.71}})
    winner, rounds, _ = _settle(best, [best, _record("b", 0.49, 1)], trainer)
    assert [r["epochs"] for r in rounds] == [6, 12]  # 24 would pass the cap of 12
    assert winner["architecture_key"] == "b"
    tied = finals.still_tied(winner, rounds, 600)
    assert tied == {"keys": ["a #0"], "margin": 0.037, "epochs": 12}


def test_at_most_three_finalists_the_closest_first():
    best = _record("a", 0.5, 0)
    others = [
        _record(k, s, n)
        for n, (k, s) in enumerate((("b", 0.47), ("c", 0.49), ("d", 0.48), ("e", 0.2)), 1)
    ]
    trainer = Trainer({f"{k} #{n}": {6: 0.9 if k == "a" else 0.5} for n, k in enumerate("abcd")})
    winner, _, _ = _settle(best, [best, *others], trainer)
    assert {k for k, _ in trainer.calls} == {"a #0", "c #2", "d #3"}
    assert winner["architecture_key"] == "a"


def test_nothing_is_trained_without_a_tie_or_past_the_deadline():
    best = _record("a", 0.5, 0)
    trainer = Trainer({})
    assert _settle(best, [best, _record("b", 0.3, 1)], trainer)[:2] == (best, [])
    # a tie, but the search's time is up: the proxy's best stands and the log says why
    winner, rounds, lines = _settle(
        best, [best, _record("b", 0.49, 1)], trainer, deadline=time.monotonic() - 1
    )
    assert (winner, rounds, trainer.calls) == (best, [], [])
    assert "search.timeout_s reached" in lines[-1]
    # train.epochs no longer than the search's: no room to train longer
    assert _settle(best, [best, _record("b", 0.49, 1)], trainer, epochs=(3, 3))[:2] == (best, [])


def test_a_round_cut_short_by_the_deadline_does_not_count():
    best = _record("a", 0.5, 0)

    class Slow(Trainer):
        def __call__(self, record, epochs):
            if epochs == 12:  # the second round's first training outlasts the search's time
                time.sleep(0.6)
            return super().__call__(record, epochs)

    trainer = Slow({"a #0": {6: 0.6, 12: 0.1}, "b #1": {6: 0.59, 12: 0.9}})
    winner, rounds, lines = _settle(
        best, [best, _record("b", 0.49, 1)], trainer, deadline=time.monotonic() + 0.5
    )
    assert [r["epochs"] for r in rounds] == [6]
    assert trainer.calls[-1] == ("a #0", 12)  # b's 12 epochs never started
    assert winner["architecture_key"] == "a" and winner["final_epochs"] == 6
    assert "12-epoch round; it does not count" in lines[-1]


def test_a_study_is_tied_only_once_every_given_architecture_has_been_tried():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for key in ("a", "b", "c"):
        study.enqueue_trial({"x": 0.0}, user_attrs={"architecture_key": key})

    def tell(key: str, score: float, feasible: bool = True) -> None:
        trial = study.ask()
        trial.set_user_attr("architecture_key", key)
        trial.set_user_attr("feasible", feasible)
        study.tell(trial, score)

    tell("a", 0.5)
    tell("b", 0.49)
    assert not finals.first_pass_tied(study, 600)  # c still waits
    tell("c", 0.9, feasible=False)  # over budget: its score counts for nothing
    assert finals.first_pass_tied(study, 600)
    tell("c", 0.7)  # now c is clear of a and b
    assert not finals.first_pass_tied(study, 600)
