"""The search stage: Optuna over families, levels and training hyper-parameters.

Before anything is built, each target's latency source is settled: a target whose runner is not
this host (and has no latency model) refuses the search. Every distinct architecture is tried
once before any is tried again (``search/study.py``), and an exact repeat is not trained twice.
Every candidate is first built and timed for each target; one that breaks a budget is recorded
as infeasible and never trained. When the validation split cannot tell the best trial from
others, they are trained again for longer before one is chosen (``search/finals.py``). Trials
live in an Optuna storage (SQLite in the run folder by default), with heartbeats, so a killed
search resumes without losing finished trials.
"""

from __future__ import annotations

import json
import time
import warnings

from tango_ci.context import StageContext
from tango_ci.exceptions import TangoError
from tango_ci.plugins import get_task
from tango_ci.rundir import read_json, write_json
from tango_ci.search import finals
from tango_ci.search.feasibility import (
    busy_host_note,
    describe_sources,
    latency_sources,
    measure_candidate,
)
from tango_ci.search.study import (
    DUPLICATE_OF,
    create_study,
    enqueue_architectures,
    finished_twin,
)
from tango_ci.train.device import device_for
from tango_ci.train.trainer import set_threads


class NoFeasibleCandidate(TangoError):
    _template = (
        "no candidate meets the budgets of every target after {trials} trial(s); "
        "closest: {closest}. {advice}"
    )


def no_feasible_advice(closest: dict | None, hint: str) -> tuple[str, str]:
    """The closest violation as text, and what to do: relax the budgets; or, when that
    violation is a latency tail of a busy host's timing, time it on an idle host."""
    if closest is None:
        return "no trial finished", f"Relax the budgets{hint}"
    text = (
        f"{closest['budget']} {closest['value']:.3g} > {closest['limit']:.3g} on "
        f"target {closest['target']}"
    )
    busy = busy_host_note(closest)
    if busy is None:
        return text, f"Relax the budgets{hint}"
    return (
        text + busy,
        f"Rerun on an idle host (or one whose runner has fewer threads), or relax the budgets{hint}",
    )


def storage_url(ctx: StageContext) -> str:
    return (
        ctx.options.get("storage")
        or ctx.spec.search.storage
        or f"sqlite:///{(ctx.folder / 'study.db').resolve()}"
    )


def run(ctx: StageContext) -> None:
    if ctx.spec.search.strategy == "supernet":  # one supernet instead of trials
        from tango_ci.supernet.space import record_supernet_space

        record_supernet_space(ctx)
        return
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial raises here
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    spec, folder = ctx.spec, ctx.folder
    sources = latency_sources(spec)  # refuses before anything is built or any trial exists
    ctx.recorder.summary["latency_sources"] = describe_sources(sources)
    set_threads()
    import torch

    torch.manual_seed(spec.search.seed)  # torch seeds itself randomly per process otherwise
    device = device_for(spec)
    ctx.reporter.log(f"search trials train on {device.name} ({device.precision})")
    ctx.recorder.summary["device"] = device.describe()
    space = get_task(ctx.spec.task).search_space(ctx, device)
    multi = spec.search.sampler == "nsga2"
    samples = getattr(space, "accuracy_samples", None)  # None: the score is no accuracy
    study = create_study(spec, f"{spec.name}-{ctx.run.id}", storage_url(ctx), samples)
    optuna.storages.fail_stale_trials(study)
    queued = enqueue_architectures(study, space, spec.search.trials, spec.search.seed)
    if queued:
        ctx.reporter.log(f"architectures to try first: {', '.join(queued)}")
    done = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    remaining = max(0, spec.search.trials - len(done))
    if done:
        ctx.reporter.log(
            f"resuming search: {len(done)} trial(s) already finished, {remaining} to go"
        )
    cache_path = folder / "latency-cache.json"
    cache: dict = read_json(cache_path) if cache_path.exists() else {}
    epochs_log = folder / "epochs.jsonl"
    first_target = spec.targets[0]

    def objective(trial):
        params = space.suggest(trial)
        key = space.key(params)
        if key not in cache:
            workdir = folder / "candidates" / key
            onnx_path, model_dir, size, about = space.export(params, workdir)
            cache[key] = {
                "about": about,
                "targets": measure_candidate(
                    onnx_path, model_dir, spec, workdir, space.calibration, size, sources
                ),
            }
            write_json(cache_path, cache)
        measured = cache[key]["targets"]
        for name, value in cache[key]["about"].items():
            trial.set_user_attr(name, value)
        trial.set_user_attr("architecture_key", key)
        trial.set_user_attr("targets", measured)
        trial.set_user_attr("latency_source", {n: s.kind for n, s in sources.items()})
        latency = measured[first_target.name]["latency"][
            f"{first_target.constraints.latency_percentile}_ms"
        ]
        violations = [dict(v, target=name) for name, m in measured.items() for v in m["violations"]]
        trial.set_user_attr("violations", violations)
        trial.set_user_attr("feasible", not violations)
        trial.set_constraint("budget", max((v["excess"] for v in violations), default=-1.0))
        if violations:
            trial.set_user_attr("epochs_trained", 0)
            return (0.0, latency) if multi else 0.0
        twin = finished_twin(study, trial, params)
        if twin is not None:  # the sampler repeated a finished trial: its result stands
            trial.set_user_attr(DUPLICATE_OF, twin.number)
            trial.set_user_attr("epochs_trained", 0)
            if twin.state.name == "PRUNED":
                raise optuna.TrialPruned()
            return tuple(twin.values) if multi else twin.values[0]

        def on_epoch(epoch: int, metrics: dict) -> None:
            with open(epochs_log, "a") as handle:
                handle.write(json.dumps({"trial": trial.number, **metrics}) + "\n")
            trial.set_user_attr("epochs_trained", epoch + 1)
            if not multi:  # Optuna prunes single-objective studies only
                trial.report(metrics[space.score_name], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()

        score = space.train(params, trial.number, on_epoch, ctx.reporter)
        return (score, latency) if multi else score

    settles = bool(samples) and not multi  # ties are settled by longer training (finals.py)
    timeout = spec.search.timeout_s
    deadline = None if timeout is None else time.monotonic() + timeout
    bar = ctx.reporter.task("search trials", total=spec.search.trials)
    bar.update(completed=len(done))
    callbacks = [
        lambda s, t: bar.update(completed=len([x for x in s.trials if x.state.is_finished()]))
    ]
    if timeout is not None and settles:  # the study leaves time for the finals
        timeout *= finals.STUDY_SHARE
        callbacks.append(lambda s, t: _stop_for_finals(s, samples or 0, ctx.reporter))
    try:
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=timeout,
            callbacks=callbacks,
            catch=(),
        )
    finally:
        bar.close()

    def train_longer(record: dict, epochs: int) -> float:
        return space.train(
            record["params"], record["number"], lambda *_: None, ctx.reporter, epochs=epochs
        )

    _write_results(ctx, study, multi, samples, (train_longer, deadline, finals.chance_score(space)))


def _stop_for_finals(study, samples: int, reporter) -> None:
    """Under a time budget, a tie after every architecture's first trial ends the study: the
    time left settles it (``search/finals.py``)."""
    if finals.first_pass_tied(study, samples):
        reporter.log("every architecture tried once and the best is tied: settling it next")
        study.stop()


def _trial_record(
    trial, first_target: str, percentiles: dict[str, str], score: tuple[str, str]
) -> dict:
    """One trial as data; ``score`` is the task's validation quality (its name and label),
    ``latency_ms`` each target's latency at that target's percentile."""
    measured = trial.user_attrs.get("targets", {})
    return {
        "number": trial.number,
        "state": trial.state.name,
        "params": trial.params,
        "score": trial.values[0] if trial.values else None,
        "score_name": score[0],
        "score_label": score[1],
        "feasible": trial.user_attrs.get("feasible"),
        "violations": trial.user_attrs.get("violations", []),
        "epochs_trained": trial.user_attrs.get("epochs_trained", 0),
        "parameters": trial.user_attrs.get("parameters"),
        "architecture": trial.user_attrs.get("architecture"),
        "architecture_key": trial.user_attrs.get("architecture_key"),
        "duplicate_of": trial.user_attrs.get(DUPLICATE_OF),
        "latency_ms": {
            name: m["latency"][f"{percentiles[name]}_ms"]
            for name, m in measured.items()
            if name in percentiles
        },
        "latency_source": trial.user_attrs.get("latency_source", {}),
        "first_target": first_target,
    }


def pareto_front(records: list[dict]) -> list[dict]:
    """Feasible trials no other feasible trial beats on both accuracy and latency (a trial
    that repeated another exactly stands in for none)."""
    points = [
        r
        for r in records
        if r["feasible"] and r["state"] == "COMPLETE" and r.get("duplicate_of") is None
    ]

    def latency(r):
        return r["latency_ms"][r["first_target"]]

    return sorted(
        (
            r
            for r in points
            if not any(
                o["score"] >= r["score"]
                and latency(o) <= latency(r)
                and (o["score"] > r["score"] or latency(o) < latency(r))
                for o in points
            )
        ),
        key=latency,
    )


def _write_results(
    ctx: StageContext, study, multi: bool, samples: int | None, settle: tuple
) -> None:
    """``settle``: how to train a record longer, the search's deadline and the chance score,
    for the finals."""
    spec, folder = ctx.spec, ctx.folder
    first = spec.targets[0]
    quality = get_task(spec.task).quality
    percentiles = {t.name: t.constraints.latency_percentile for t in spec.targets}
    records = [
        _trial_record(t, first.name, percentiles, (quality.name, quality.label))
        for t in study.trials
    ]
    write_json(folder / "trials.json", records)
    front = pareto_front(records)
    write_json(folder / "pareto.json", front)
    ctx.recorder.output_file("trials", folder / "trials.json")
    ctx.recorder.output_file("pareto", folder / "pareto.json")
    feasible = [
        r
        for r in records
        if r["feasible"] and r["state"] == "COMPLETE" and r["duplicate_of"] is None
    ]
    if not feasible:
        closest = min(
            (v for r in records for v in r["violations"]), key=lambda v: v["excess"], default=None
        )
        from tango_ci.models import LEVELS

        least = min((LEVELS.index(lv) for lv in spec.search.levels if lv in LEVELS), default=0)
        smaller = LEVELS[:least]  # a hint only where there is a smaller level to allow
        hint = f" or allow smaller levels (search.levels: {', '.join(smaller)})" if smaller else ""
        text, advice = no_feasible_advice(closest, hint)
        raise NoFeasibleCandidate(trials=len(records), closest=text, advice=advice)
    best = max(feasible, key=lambda r: (r["score"], -r["latency_ms"][first.name]))
    rounds: list[dict] = []
    chance = None if multi else settle[2]  # the finals judge a tie at chance (not for nsga2)
    if samples and best["score"] is not None and not multi:  # a tie: train longer (finals.py)
        search = spec.search
        most = max(search.epochs, min(spec.train.epochs, finals.CAP * search.epochs))
        best, rounds = finals.settle(
            best,
            feasible,
            samples,
            settle[0],
            (search.epochs, most),
            settle[1],
            ctx.reporter.log,
            chance=chance,
        )
    write_json(folder / "best.json", best)
    ctx.recorder.output_file("best", folder / "best.json")
    tied = finals.still_tied(best, rounds, samples or 0) or (
        None if rounds else tied_with(best, feasible, samples)
    )
    if tied and not finals.at_chance(best["score"], chance, samples or 0):  # the finals said so
        ctx.reporter.log(
            f"the search could not tell {finals.label(best) if rounds else best['architecture_key']} "
            f"from {', '.join(tied['keys'])}: "
            f"their {best['score_label']} lies within {tied['margin']:.3f} (two standard errors "
            f"on {samples} validation images) of the best"
            + (f" after {tied['epochs']} epochs each" if "epochs" in tied else "")
            + "; the choice among them is a guess that "
            + (
                "only more validation images can settle (all score the most there is)"
                if best["score"] >= 1
                else "more search.epochs would settle"
            )
        )
    ctx.recorder.summary.update(
        {
            "trials": len(records),
            "feasible": len(feasible),
            "infeasible": sum(1 for r in records if r["feasible"] is False),
            "pruned": sum(1 for r in records if r["state"] == "PRUNED"),
            "failed": sum(1 for r in records if r["state"] == "FAIL"),
            "best": {
                k: best[k]
                for k in (
                    "number",
                    "params",
                    "score",
                    "score_name",
                    "score_label",
                    "latency_ms",
                    "architecture",
                    "latency_source",
                )
            }
            | {k: best[k] for k in ("final_score", "final_epochs") if k in best},
            "duplicates": sum(1 for r in records if r["duplicate_of"] is not None),
            "pareto": [r["number"] for r in front],
            "tied": tied,
            "finals": rounds,
            "storage": _redact(storage_url(ctx)),
            "sampler": spec.search.sampler,
            "pruner": spec.search.pruner,
        }
    )


def tied_with(best: dict, feasible: list[dict], samples: int | None) -> dict | None:
    """Other architectures whose search score the validation split cannot tell from the
    best's (within two binomial standard errors of an accuracy on ``samples`` images), or
    None when there are none or the score is no accuracy."""
    if not samples or best["score"] is None:
        return None
    rivals, margin = finals.tied_records(best, feasible, samples)
    keys = sorted(r["architecture_key"] for r in rivals)
    return {"keys": keys, "margin": round(margin, 4)} if keys else None


def _redact(url: str) -> str:
    """Storage URLs may carry passwords; keep them out of manifests."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
