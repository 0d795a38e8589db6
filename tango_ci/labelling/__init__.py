"""``tango label queue``: the logged images most worth labelling, as Label Studio tasks (with
the model's answers as pre-annotations) and CVAT XML.

Strategies: ``entropy``, ``margin`` (smallest gap between the two best classes),
``least-confidence``, ``coreset`` (k-center greedy on the answers and input statistics: the
images farthest from everything already chosen), ``bald`` (mutual information under MC
dropout, :mod:`.bald`; classification only, and it needs the trained network, so its scores
are computed from the kept images and passed in) and ``random``. Detection answers are scored
by their boxes' scores (entropy of each box's score, summed; least confidence of the weakest
box). Published gains over random are often small, so the queue says which strategy chose it
and ``random`` is always one flag away.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from tango_ci.exceptions import TangoError
from tango_ci.rundir import display, write_json

STRATEGIES = ("entropy", "margin", "least-confidence", "bald", "coreset", "random")
SCORED = ("bald",)  # scored outside the log, from the images and the trained network
EPS = 1e-12


def queue_problem(record: dict) -> str | None:
    """What the queue needs of a record beyond :func:`tango_ci.monitor.record_problem`:
    the kept image's name (a sha256), probabilities to rank by, and answers it can turn into
    pre-annotations. None when it is fit. Records of models with other class counts may mix
    (a window spans a retraining): each is ranked on its own, and coreset refuses the mix."""
    from tango_ci.monitor import SHA256_HEX, finite_number, record_problem

    problem = record_problem(record)
    if problem:
        return problem
    digest = record.get("input_hash")
    if not isinstance(digest, str) or not SHA256_HEX.fullmatch(digest):
        return "'input_hash' is not a sha256 in hex"
    answer = record["outputs"]
    if "probabilities" in answer and not answer["probabilities"]:
        return "'outputs.probabilities' is empty"
    if "label" in answer and not isinstance(answer["label"], str):
        return "'outputs.label' is not text"
    for number, box in enumerate(answer.get("boxes", []), 1):
        corners = box.get("box")
        if not (
            isinstance(corners, list) and len(corners) == 4 and all(map(finite_number, corners))
        ):
            return f"box {number} has no 'box' of 4 finite numbers"
        if not isinstance(box.get("label"), str):
            return f"box {number}: 'label' is not text"
    return None


def check_queue(records: list[dict], source: str = "the log") -> None:
    """Refuse records the queue cannot use, naming the first (``source`` is the log shown)."""
    for number, record in enumerate(records, 1):
        problem = queue_problem(record)
        if problem:
            raise TangoError(f"{source}: record {number} of the window: {problem}")


def _uncertainty(answer: dict, strategy: str) -> float:
    if "probabilities" in answer:
        p = np.clip(np.asarray(answer["probabilities"], dtype=np.float64), EPS, 1.0)
        top = np.sort(p)[::-1]
        if strategy == "entropy":
            return float(-(p * np.log(p)).sum())
        if strategy == "margin":
            return float(-(top[0] - (top[1] if len(top) > 1 else 0.0)))
        return float(1.0 - top[0])  # least confidence
    scores = np.clip(np.asarray([b["score"] for b in answer.get("boxes", [])]), EPS, 1 - EPS)
    if not len(scores):
        return 0.0
    if strategy == "entropy":
        return float(-(scores * np.log(scores) + (1 - scores) * np.log(1 - scores)).sum())
    if strategy == "margin":
        return float(-np.abs(scores - 0.5).min())
    return float(1.0 - scores.min())


def _features(record: dict) -> np.ndarray:
    answer = record["outputs"]
    outputs = answer.get("probabilities") or [len(answer.get("boxes", []))]
    summary = record.get("input_summary", {})
    return np.asarray([*outputs, *summary.get("mean", []), *summary.get("std", [])], np.float64)


def require_probabilities(records: list[dict], strategy: str) -> None:
    """Refuse ``strategy`` (BALD) for answers without class probabilities (detection)."""
    if any("probabilities" not in r["outputs"] for r in records):
        others = ", ".join(s for s in STRATEGIES if s not in SCORED)
        raise TangoError(
            f"strategy '{strategy}' scores classification answers only; these answers have "
            f"no class probabilities (detection?): use one of {others}"
        )


def choose(
    records: list[dict],
    budget: int,
    strategy: str,
    seed: int = 0,
    scores: Sequence[float] | None = None,
) -> list[int]:
    """Indices of the ``budget`` records ``strategy`` picks, most worth labelling first.

    ``scores`` (one per record, higher is more worth labelling) are what ``bald`` ranks by:
    :func:`.bald.bald_scores` computes them from the images and the trained network.
    """
    if strategy not in STRATEGIES:
        raise TangoError(f"strategy '{strategy}' is not one of {', '.join(STRATEGIES)}")
    count = min(budget, len(records))
    if strategy in SCORED:
        require_probabilities(records, strategy)
        if scores is None:
            raise TangoError(
                f"strategy '{strategy}' ranks by scores computed from the images and the "
                "trained network, and none were given (tango label queue: --model RUN/train)"
            )
        if len(scores) != len(records):
            raise TangoError(f"{len(scores)} {strategy} scores for {len(records)} records")
        ranked = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
        return [int(i) for i in ranked[:count]]
    if strategy == "random":
        return [int(i) for i in np.random.default_rng(seed).permutation(len(records))[:count]]
    if strategy == "coreset":
        features = [_features(r) for r in records]
        if len({len(f) for f in features}) > 1:
            raise TangoError(
                "coreset compares answers and input statistics of one length; these records "
                "differ (tensor and image requests, or answers of different models?)"
            )
        points = np.stack(features)
        scale = points.std(0)
        points = points / np.where(scale == 0, 1.0, scale)
        chosen = [int(np.argmax(np.linalg.norm(points - points.mean(0), axis=1)))]
        distance = np.linalg.norm(points - points[chosen[0]], axis=1)
        while len(chosen) < count:
            nxt = int(np.argmax(distance))
            chosen.append(nxt)
            distance = np.minimum(distance, np.linalg.norm(points - points[nxt], axis=1))
        return chosen
    uncertainty = np.asarray([_uncertainty(r["outputs"], strategy) for r in records])
    return [int(i) for i in np.argsort(-uncertainty, kind="stable")[:count]]


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path, formats=["PNG"]) as image:  # written by this module
        return image.size


def _prediction(answer: dict, width: int, height: int) -> list[dict]:
    """Label Studio result items: a choice, or rectangles in percent of the image."""
    if "label" in answer:
        return [
            {
                "from_name": "label",
                "to_name": "image",
                "type": "choices",
                "value": {"choices": [answer["label"]]},
            }
        ]
    results = []
    for box in answer.get("boxes", []):
        x1, y1, x2, y2 = box["box"]
        results.append(
            {
                "from_name": "label",
                "to_name": "image",
                "type": "rectanglelabels",
                "original_width": width,
                "original_height": height,
                "score": box["score"],
                "value": {
                    "x": 100.0 * x1 / width,
                    "y": 100.0 * y1 / height,
                    "width": 100.0 * (x2 - x1) / width,
                    "height": 100.0 * (y2 - y1) / height,
                    "rotation": 0,
                    "rectanglelabels": [box["label"]],
                },
            }
        )
    return results


def kept_image(images: Path, record: dict) -> Path:
    """Where ``serve --keep-images`` keeps the image a record answered (its sha256 names it;
    a name that is no sha256, or a kept file linking out of ``images``, is refused)."""
    from tango_ci.monitor import SHA256_HEX

    digest = record.get("input_hash")
    if not isinstance(digest, str) or not SHA256_HEX.fullmatch(digest):
        raise TangoError(f"a record's input hash {str(digest)[:20]!r} is not a sha256 in hex")
    path = images / f"{digest}.img"
    if path.exists() and not path.resolve().is_relative_to(images.resolve()):
        raise TangoError(f"{display(path)}: leads out of {display(images)}")
    return path


def kept_pool(records: list[dict], images: Path) -> list[dict]:
    """The latest answer per distinct image that was kept in ``images``."""
    unique: dict[str, dict] = {}
    for record in records:
        if kept_image(images, record).is_file():
            unique[record["input_hash"]] = record
    return list(unique.values())


def write_queue(
    records: list[dict],
    images: Path,
    out: Path,
    budget: int,
    strategy: str,
    labels: list[str],
    seed: int = 0,
    scores: Mapping[str, float] | None = None,
) -> dict:
    """Label Studio ``tasks.json``, CVAT ``annotations.xml`` and the images, in ``out``.

    ``scores`` (input hash -> score) rank the kept images for ``bald``.
    """
    if out.exists() and any(out.iterdir()):
        raise TangoError(f"{display(out)} exists and is not empty; nothing was written")
    check_queue(records)
    pool = kept_pool(records, images)
    if not pool:
        raise TangoError(
            f"no logged image is in {display(images)} (serve with --keep-images to keep them)"
        )
    if scores is not None:
        missing = [r["input_hash"] for r in pool if r["input_hash"] not in scores]
        if missing:
            raise TangoError(f"no {strategy} score for the kept image {missing[0][:16]}")
    ranked = None if scores is None else [scores[r["input_hash"]] for r in pool]
    picked = [pool[i] for i in choose(pool, budget, strategy, seed, ranked)]
    (out / "images").mkdir(parents=True)
    tasks, cvat = [], []
    for rank, record in enumerate(picked):
        name = f"{record['input_hash']}.png"  # the whole hash: a prefix could be made to collide
        source = kept_image(images, record)
        from PIL import Image

        from tango_ci.data.images import read_image  # allowed decoders, bounded, upright

        Image.fromarray(read_image(source)).save(out / "images" / name)
        width, height = _image_size(out / "images" / name)
        answer = record["outputs"]
        tasks.append(
            {
                "data": {"image": f"images/{name}", "input_hash": record["input_hash"]},
                "predictions": [
                    {
                        "model_version": record["model_version"],
                        "score": float(_uncertainty(answer, "least-confidence")),
                        "result": _prediction(answer, width, height),
                    }
                ],
                "meta": {"rank": rank, "strategy": strategy},
            }
        )
        cvat.append(_cvat_image(rank, name, width, height, answer))
    (out / "tasks.json").write_text(json.dumps(tasks, indent=1) + "\n")
    label_xml = "".join(f"<label><name>{quoteattr(x)[1:-1]}</name></label>" for x in labels)
    (out / "annotations.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version>'
        f"<meta><task><labels>{label_xml}</labels></task></meta>\n"
        + "\n".join(cvat)
        + "\n</annotations>\n"
    )
    summary = {"strategy": strategy, "budget": budget, "queued": len(tasks), "pool": len(pool)}
    write_json(out / "queue.json", summary)
    return summary


def _cvat_image(index: int, name: str, width: int, height: int, answer: dict) -> str:
    inner = ""
    if "label" in answer:
        inner = f'<tag label={quoteattr(answer["label"])} source="auto"/>'
    for box in answer.get("boxes", []):
        x1, y1, x2, y2 = (f"{v:.2f}" for v in box["box"])
        inner += (
            f'<box label={quoteattr(box["label"])} source="auto" occluded="0" '
            f'xtl="{x1}" ytl="{y1}" xbr="{x2}" ybr="{y2}" z_order="0"/>'
        )
    return (
        f'<image id="{index}" name={quoteattr(name)} width="{width}" height="{height}">'
        f"{inner}</image>"
    )
