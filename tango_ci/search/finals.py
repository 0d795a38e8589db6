"""Settling a tied search by training the tied architectures longer.

A short search proxy ranks well only where the proxy separates the candidates. On 12-class
glyphs, after three epochs resnet-s, mobilenetv3-s and resnet-xs all sit at 0.13-0.14
validation accuracy (600 images: one standard error 0.014), while fifteen epochs bring them to
0.58, 0.22 and 0.27: picking among them by the proxy is a guess. So when other trials' scores
lie within two standard errors of the best's (other architectures, or the same one with other
hyper-parameters: a learning rate that wins over 6 epochs can lose over 15), the best and up
to ``FINALISTS - 1`` of the closest are trained again from scratch with twice the epochs, then
twice again, until one is clear of the rest (successive halving on the tied set only), the
epochs reach ``CAP`` times the search's or ``train.epochs``, or the search's time is up.

With ``search.timeout_s`` the study stops starting trials at ``STUDY_SHARE`` of it, or as soon
as every architecture it was given has been tried once and the best is tied: more trials of
the same short length would only repeat a comparison the proxy cannot make, so the time left
goes to the finals.

A tie at chance level is not played: when the best tied score is no better than guessing (for
an accuracy over classes, one over their number), the candidates learned nothing in the
search's epochs, and training them again from scratch does not tell them apart either (three
trials at 0.333 on 3 classes were retrained for 6 then 10 epochs and were still tied). The
search's best (by score, then latency) is kept, and the log says that more ``search.epochs``
or more data is needed.

A killed search reruns its finals from the start: they are deterministic (same seed, same
params) and short, and the study's trials are kept either way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from tango_ci.search.pruning import Z, standard_error

FINALISTS = 3
CAP = 4  # the finals train at most this many times the search's epochs
STUDY_SHARE = 0.75  # of search.timeout_s, when finals may follow


def tied_records(best: dict, feasible: list[dict], samples: int) -> tuple[list[dict], float]:
    """The best trial of each other architecture whose score lies within two standard errors
    of ``best``'s, best-scoring first; and that margin."""
    margin = Z * standard_error(best["score"], samples)
    per_key: dict[str, dict] = {}
    for record in feasible:
        key, score = record["architecture_key"], record["score"]
        if key == best["architecture_key"] or score is None or score < best["score"] - margin:
            continue
        if key not in per_key or score > per_key[key]["score"]:
            per_key[key] = record
    return sorted(per_key.values(), key=lambda r: -r["score"]), margin


def chance_score(space: Any) -> float | None:
    """The accuracy a network that learned nothing reaches on ``space``'s task: one over the
    number of classes when its score is an accuracy over classes (``accuracy_samples`` and
    ``classes``), else None (no chance level is known)."""
    classes = getattr(space, "classes", None)
    if not getattr(space, "accuracy_samples", None) or not isinstance(classes, list) or not classes:
        return None
    return 1 / len(classes)


def at_chance(score: float | None, chance: float | None, samples: int) -> bool:
    """Whether ``score``, an accuracy on ``samples`` images, is at or below ``chance`` to the
    image: no more images right than the whole number chance rounds up to (100 of 299 on 3
    classes is chance; 3 of 6 is not)."""
    if score is None or chance is None or not samples:
        return False
    return round(score * samples) <= math.ceil(chance * samples - 1e-9)


def label(record: dict) -> str:
    """A trial as the finals name it: its architecture and number."""
    return f"{record['architecture_key']} #{record['number']}"


def rivals(best: dict, feasible: list[dict], samples: int) -> list[dict]:
    """The other trials whose score lies within two standard errors of ``best``'s, best first."""
    margin = Z * standard_error(best["score"], samples)
    close = [
        r
        for r in feasible
        if r["number"] != best["number"]
        and r["score"] is not None
        and r["score"] >= best["score"] - margin
    ]
    return sorted(close, key=lambda r: -r["score"])


def first_pass_tied(study: Any, samples: int) -> bool:
    """Whether ``study`` has tried every architecture it was given (nothing waits) and its best
    feasible score is tied with another architecture's."""
    trials = study.get_trials(deepcopy=False)
    if any(t.state.name == "WAITING" for t in trials):
        return False
    records = [
        {"architecture_key": t.user_attrs["architecture_key"], "score": t.values[0]}
        for t in trials
        if t.state.name == "COMPLETE"
        and t.user_attrs.get("feasible")
        and "architecture_key" in t.user_attrs
        and "duplicate_of" not in t.user_attrs
    ]
    if not records:
        return False
    best = max(records, key=lambda r: r["score"])
    return bool(tied_records(best, records, samples)[0])


def settle(
    best: dict,
    feasible: list[dict],
    samples: int,
    train: Callable[[dict, int], float],
    epochs: tuple[int, int],
    deadline: float | None,
    log: Callable[[str], None],
    *,
    chance: float | None = None,
) -> tuple[dict, list[dict]]:
    """The winner of the finals among ``best`` and its tied rivals, and the rounds played.

    ``train(record, epochs)`` trains a record's params from scratch and returns its best
    validation accuracy; ``epochs`` is (the search's epochs, the most the finals may use);
    ``deadline`` a ``time.monotonic()`` after which no further training starts. A round cut
    short by the deadline does not count. The winner is ``best``'s record (or a rival's) with
    ``final_score`` and ``final_epochs`` added when a round was played. ``chance``: the score
    of a network that learned nothing; a tie at it plays no round (``best`` is kept).
    """
    finalists = [best, *rivals(best, feasible, samples)[: FINALISTS - 1]]
    search_epochs, most = epochs
    if len(finalists) > 1 and at_chance(best["score"], chance, samples):
        log(
            f"no finals for the tie of {', '.join(map(label, finalists))}: the best scores "
            f"{best['score']:.3f}, at chance ({chance:.3f}), so the candidates learned nothing in "
            f"the search's {search_epochs} epoch(s) and training them again from scratch would "
            f"not tell them apart; more search.epochs or more data is needed. Kept "
            f"{label(best)} (by score, then latency)"
        )
        return best, []
    rounds: list[dict] = []
    current = search_epochs
    while len(finalists) > 1 and current < most:
        current = min(2 * current, most)
        names = ", ".join(map(label, finalists))
        log(f"settling a tie: training {names} for {current} epochs each")
        scores: dict[str, float] = {}
        for record in finalists:
            if deadline is not None and time.monotonic() > deadline:
                log(f"search.timeout_s reached during the {current}-epoch round; it does not count")
                return _winner(finalists, rounds), rounds
            scores[label(record)] = train(record, current)
        rounds.append({"epochs": current, "scores": {k: round(v, 4) for k, v in scores.items()}})
        finalists.sort(key=lambda r: -scores[label(r)])
        lead = scores[label(finalists[0])]
        margin = Z * standard_error(lead, samples)
        finalists = [r for r in finalists if scores[label(r)] >= lead - margin]
        log(
            f"after {current} epochs: "
            + ", ".join(f"{k} {v:.3f}" for k, v in sorted(scores.items(), key=lambda kv: -kv[1]))
            + ("" if len(finalists) > 1 else f"; {label(finalists[0])} is clear")
        )
    return _winner(finalists, rounds), rounds


def _winner(finalists: list[dict], rounds: list[dict]) -> dict:
    """The leader of the last complete round, every finalist of which played it (the search's
    best when no round was played)."""
    if not rounds:
        return finalists[0]
    scores = rounds[-1]["scores"]
    leader = max(finalists, key=lambda r: scores[label(r)])
    return leader | {
        "final_score": scores[label(leader)],
        "final_epochs": rounds[-1]["epochs"],
    }


def still_tied(winner: dict, rounds: list[dict], samples: int) -> dict | None:
    """After finals, the trials the last round still could not tell from the winner."""
    if not rounds:
        return None
    scores = rounds[-1]["scores"]
    lead = scores[label(winner)]
    margin = Z * standard_error(lead, samples)
    keys = sorted(k for k, v in scores.items() if k != label(winner) and v >= lead - margin)
    return (
        {"keys": keys, "margin": round(margin, 4), "epochs": rounds[-1]["epochs"]} if keys else None
    )


__all__ = [
    "CAP",
    "FINALISTS",
    "STUDY_SHARE",
    "at_chance",
    "chance_score",
    "first_pass_tied",
    "label",
    "rivals",
    "settle",
    "still_tied",
    "tied_records",
]
