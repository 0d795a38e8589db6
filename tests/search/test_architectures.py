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
    best = read_json(run.root / "search" / "best.json")
    assert best["latency_source"] == {"cpu-fp32": "measured"}
    summary = read_json(run.root / "search" / "manifest.json")["summary"]
    assert summary["latency_sources"]["cpu-fp32"]["source"] == "measured"
    assert summary["latency_sources"]["cpu-fp32"]["runner"] == "local-cpu"
