"""A candidate over a target's budget is rejected before any training, and the search says
that nothing fits instead of choosing anyway."""

from __future__ import annotations

from pathlib import Path

import pytest

from tango_ci import api
from tango_ci.rundir import read_json
from tango_ci.stages.search import NoFeasibleCandidate, pareto_front
from tests.pipeline_helpers import make_repo

pytestmark = pytest.mark.slow


def test_infeasible_candidates_are_never_trained(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "repo", latency=0.0001, trials=2, extra_targets="")
    with pytest.raises(NoFeasibleCandidate) as info:
        api.run(project, until="search")
    message = info.value.message
    assert message.startswith(
        "no candidate meets the budgets of every target after 2 trial(s); closest: latency_ms "
    )
    assert message.endswith("> 0.0001 on target cpu-fp32. Relax the budgets")  # xs is the least
    search = project.parent.parent / "runs" / "tiny" / "latest" / "search"
    trials = read_json(search / "trials.json")
    assert [t["feasible"] for t in trials] == [False, False]
    assert [t["epochs_trained"] for t in trials] == [0, 0]
    assert all(v["budget"] == "latency_ms" for t in trials for v in t["violations"])
    assert not (search / "epochs.jsonl").exists()  # no training epoch was ever logged
    assert not (search / "best.json").exists()
    manifest = search / "manifest.json"
    assert not manifest.exists() or read_json(manifest)["status"] != "complete"


def test_pareto_front_keeps_only_undominated_feasible_trials() -> None:
    def trial(number, accuracy, latency, feasible=True, state="COMPLETE"):
        return {
            "number": number,
            "score": accuracy,
            "latency_ms": {"t": latency},
            "first_target": "t",
            "feasible": feasible,
            "state": state,
        }

    trials = [
        trial(0, 0.9, 2.0),
        trial(1, 0.8, 1.0),
        trial(2, 0.7, 1.5),  # 2 is dominated
        trial(3, 0.95, 0.5, feasible=False),
        trial(4, 0.99, 0.1, state="PRUNED"),
    ]
    assert [t["number"] for t in pareto_front(trials)] == [1, 0]
