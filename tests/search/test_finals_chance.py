"""A tie at chance level plays no finals: candidates that learned nothing in the search's epochs
are not told apart by training them again from scratch (three trials at 0.333 on 3 classes were
retrained for 6 then 10 epochs). A real tie above chance is still settled by longer training."""

from __future__ import annotations

import pytest

from tango_ci import api
from tango_ci.context import StageContext
from tango_ci.plugins import get_task
from tango_ci.progress import SILENT
from tango_ci.rundir import StageRecorder
from tango_ci.search import finals
from tango_ci.spec import load_project
from tango_ci.train.device import device_for
from tests.pipeline_helpers import make_repo


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory):
    """The real search space of a tiny 3-class project (circle, square, triangle)."""
    project = make_repo(tmp_path_factory.mktemp("repo"), per_class=8, extra_targets="")
    run = api.run(project, until="data")
    spec = load_project(project)
    ctx = StageContext(run, spec, StageRecorder(run, "search"))
    return get_task(spec.task).search_space(ctx, device_for(spec))


class Training:
    """Trains records of ``space`` for real, and records which were trained for how long."""

    def __init__(self, space) -> None:
        self.space, self.calls = space, []

    def __call__(self, record: dict, epochs: int) -> float:
        self.calls.append((finals.label(record), epochs))
        return self.space.train(record["params"], record["number"], lambda *_: None, SILENT, epochs)


def _record(space, key: str, score: float, number: int) -> dict:
    family, level = key.rsplit("-", 1)
    params = space.defaults() | {"family": family, "level": level}
    return {"architecture_key": key, "score": score, "number": number, "params": params}


def _settle(space, scores: dict[str, float]):
    records = [_record(space, k, s, n) for n, (k, s) in enumerate(scores.items())]
    best = records[0]  # the search's best: by score, then latency
    training, lines = Training(space), []
    samples = space.accuracy_samples
    winner, rounds = finals.settle(
        best,
        records,
        samples,
        training,
        (1, 2),
        None,
        lines.append,
        chance=finals.chance_score(space),
    )
    return winner, rounds, training.calls, lines


def test_the_chance_level_of_a_classification_search_is_one_over_its_classes(space) -> None:
    assert len(space.classes) == 3 and finals.chance_score(space) == pytest.approx(1 / 3)
    samples = space.accuracy_samples
    assert finals.at_chance(round(samples / 3) / samples, 1 / 3, samples)
    assert not finals.at_chance((round(samples / 3) + 1) / samples, 1 / 3, samples)


def test_a_tie_at_chance_plays_no_finals_and_says_more_epochs_or_data(space) -> None:
    chance = 1 / 3
    scores = {"mobilenetv3-xs": chance, "resnet-xs": chance, "resnet-s": chance}
    winner, rounds, calls, lines = _settle(space, scores)
    assert calls == [] and rounds == []  # nothing trained again
    assert winner["number"] == 0 and "final_score" not in winner  # the search's best stands
    assert len(lines) == 1
    assert "learned nothing in the search's 1 epoch(s)" in lines[0]
    assert "at chance (0.333)" in lines[0]
    assert "more search.epochs or more data is needed" in lines[0]
    assert finals.still_tied(winner, rounds, space.accuracy_samples) is None


def test_a_tie_above_chance_is_still_settled_by_longer_training(space) -> None:
    samples = space.accuracy_samples
    above = (round(samples / 3) + 1) / samples
    scores = {"resnet-xs": above, "mobilenetv3-xs": above}
    winner, rounds, calls, lines = _settle(space, scores)
    assert sorted(calls) == [("mobilenetv3-xs #1", 2), ("resnet-xs #0", 2)]
    assert [r["epochs"] for r in rounds] == [2] and winner["final_epochs"] == 2
    assert lines[0] == "settling a tie: training resnet-xs #0, mobilenetv3-xs #1 for 2 epochs each"


def test_no_chance_level_is_known_without_classes() -> None:
    class Scores:
        accuracy_samples = 600  # an accuracy, but over what is not said

    assert finals.chance_score(Scores()) is None
    assert not finals.at_chance(0.0, None, 600)
