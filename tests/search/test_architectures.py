"""The search tries every distinct architecture before it repeats one, enqueues nothing twice on
resume, and never trains an exact repeat of a finished trial."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from tango_ci import api
from tango_ci.rundir import read_json
from tango_ci.search.study import enqueue_architectures, finished_twin
from tests.pipeline_helpers import make_repo


class _Space:
    """The part of a search space the study helpers use."""

    def __init__(self, families: list[str], levels: list[str]) -> None:
        self.families, self.levels = families, levels

    def architectures(self) -> list[dict]:
        return [{"family": f, "level": level} for f in self.families for level in self.levels]

    def key(self, params: dict) -> str:
        return f"{params['family']}-{params['level']}"

    def suggest(self, trial) -> dict:
        return {
            "family": trial.suggest_categorical("family", self.families),
            "level": trial.suggest_categorical("level", self.levels),
            "lr": trial.suggest_float("lr", 1e-3, 1e-1, log=True),
        }


def _study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))


def test_every_architecture_is_enqueued_once_in_a_seeded_order() -> None:
    space = _Space(["a", "b", "c"], ["xs", "s"])
    study = _study()
    first = enqueue_architectures(study, space, trials=4, seed=3)
    assert len(first) == len(set(first)) == 4
    assert first == enqueue_architectures(_study(), space, trials=4, seed=3)  # seeded
    assert enqueue_architectures(study, space, trials=4, seed=3) == []  # resumed: nothing again
    study.optimize(lambda t: space.suggest(t)["lr"], n_trials=2)
    assert enqueue_architectures(study, space, trials=4, seed=3) == []  # two still waiting
    study.optimize(lambda t: space.suggest(t)["lr"], n_trials=2)
    keys = [space.key(t.params) for t in study.trials]
    assert keys == first
    # more trials than before: the architectures not tried yet come next, then the sampler's
    assert sorted(enqueue_architectures(study, space, trials=10, seed=3)) == sorted(
        {space.key(a) for a in space.architectures()} - set(first)
    )
    assert len(study.trials) == 6


def test_each_architecture_is_first_tried_with_the_space_defaults() -> None:
    class WithDefaults(_Space):
        def defaults(self) -> dict:
            return {"lr": 0.002, "family": "ignored"}  # the architecture's own keys win

    space, study = WithDefaults(["a", "b"], ["xs"]), _study()
    enqueue_architectures(study, space, trials=3, seed=0)
    study.optimize(lambda t: space.suggest(t)["lr"], n_trials=3)
    given = [(t.params["family"], t.params["lr"]) for t in study.trials]
    assert sorted(given[:2]) == [("a", 0.002), ("b", 0.002)]
    assert given[2][1] != 0.002  # then the sampler chooses freely


def test_an_exact_repeat_finds_its_finished_twin() -> None:
    space, study = _Space(["a"], ["xs"]), _study()
    study.enqueue_trial({"family": "a", "level": "xs", "lr": 0.01})
    study.optimize(lambda t: space.suggest(t)["lr"], n_trials=1)
    twin_params = {"family": "a", "level": "xs", "lr": 0.01}
    trial = study.ask()
    twin = finished_twin(study, trial, twin_params)
    assert twin is not None and twin.number == 0
    assert finished_twin(study, trial, twin_params | {"lr": 0.02}) is None


@pytest.mark.slow
def test_four_trials_over_four_architectures_train_four_distinct_ones(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "repo", per_class=8, trials=4, extra_targets="")
    text = (project / "project.yaml").read_text()
    text = text.replace("families: [resnet]", "families: [resnet, mobilenetv3]")
    (project / "project.yaml").write_text(text.replace("levels: [xs]", "levels: [xs, s]"))
    run = api.run(project, until="search")
    trials = read_json(run.root / "search" / "trials.json")
    keys = [t["architecture_key"] for t in trials]
    assert sorted(keys) == ["mobilenetv3-s", "mobilenetv3-xs", "resnet-s", "resnet-xs"]
    assert all(t["epochs_trained"] >= 1 and t["duplicate_of"] is None for t in trials)
    assert all(t["latency_source"] == {"cpu-fp32": "measured"} for t in trials)
    # every architecture at the project's own training settings (lr 0.01, batch 16)
    assert {(t["params"]["lr"], t["params"]["batch"]) for t in trials} == {(0.01, 16)}
    best = read_json(run.root / "search" / "best.json")
    assert best["latency_source"] == {"cpu-fp32": "measured"}
    summary = read_json(run.root / "search" / "manifest.json")["summary"]
    assert summary["latency_sources"]["cpu-fp32"]["source"] == "measured"
    assert summary["latency_sources"]["cpu-fp32"]["runner"] == "local-cpu"
    # 8 images per class leave a validation split too small to rank anything: the best three
    # trials were trained again for train.epochs (2, twice the search's 1), the winner chosen there
    assert [r["epochs"] for r in summary["finals"]] == [2]
    played = summary["finals"][0]["scores"]  # "resnet-s #2": trials named by architecture
    assert len(played) == 3 and {label.split(" #")[0] for label in played} <= set(keys)
    assert best["final_epochs"] == 2
    assert best["final_score"] == max(summary["finals"][0]["scores"].values())
