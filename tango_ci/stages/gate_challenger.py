"""Champion/challenger (``gate.challenger``): production's artifact and the new one, scored
here on the same images, at the target's batch.

The new model (the challenger) must beat production (the champion) on the images labelled since
it by ``margin`` and lose at most ``tolerance`` on the frozen holdout. Production's artifact is
pulled from the DVC remote its registry record names and every file is checked against that
record before it is loaded. Without new labelled images yet, the gate falls back to the
comparison with production's recorded metric and says so.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tango_ci.compile import load_artifact
from tango_ci.context import StageContext
from tango_ci.data.challenger import HOLDOUT, NEW
from tango_ci.exceptions import TangoError
from tango_ci.plugins import get_task
from tango_ci.rundir import read_json
from tango_ci.spec import TargetSpec, find_repo_root
from tango_ci.tasks import evaluation_split


def _info(check: str, status: str, note: str) -> dict:
    return {"check": check, "value": None, "limit": None, "status": status, "note": note}


def challenger_checks(ctx: StageContext, target: TargetSpec, metrics: dict) -> list[dict] | None:
    """The two checks against production, or None when the spec asks for none (the gate then
    compares with production's recorded metric) or there is no new labelled data yet."""
    from tango_ci.registry import Registry, artifact_name
    from tango_ci.registry.records import UntrustedDataError, check_record

    challenger = ctx.spec.gate.challenger
    if challenger is None:
        return None
    data = ctx.run.stage_dir("data")
    name = artifact_name(ctx.spec.name, target.name)
    what = "champion/challenger"
    try:
        entry = Registry(find_repo_root(ctx.spec.folder)).resolve(f"{name}#prod")
    except TangoError as error:
        return [_info(what, "no production model", str(error))]
    version = f"{name}@{entry['version']}"
    if not (data / f"{NEW}.npz").is_file():
        return None
    try:
        record = check_record(entry["record"], f"{version}: the record in its tag", artifact=True)
    except UntrustedDataError as error:
        return [_info(what, "fail", str(error))]
    classes = read_json(data / "classes.json")
    if record.get("classes", classes) != classes:
        return [
            _info(
                what,
                "fail",
                f"{version} was trained on the classes {', '.join(map(str, record['classes']))}; "
                f"this run has {', '.join(classes)}: not comparable on the same images",
            )
        ]
    try:
        scores = _score_both(ctx, target, Path(metrics["artifact"]), record, version)
    except Exception as exc:  # a champion that cannot run here: the gate says so
        return [_info(what, "fail", f"{version} could not be scored here: {exc}"[:400])]
    return _checks(ctx, scores, version, challenger.margin, challenger.tolerance)


def _score_both(
    ctx: StageContext, target: TargetSpec, artifact: Path, record: dict, version: str
) -> dict[str, dict]:
    """{split: {"champion", "challenger", "images"}} on the new data and the holdout."""
    from tango_ci.dvcstore import pull_dir

    task = get_task(ctx.spec.task)
    data = ctx.run.stage_dir("data")
    holdout = HOLDOUT if (data / f"{HOLDOUT}.npz").is_file() else evaluation_split(data)
    threads = ctx.spec.runners[target.runner].threads
    model_dir = ctx.run.model_dir(target.name)
    evaluators = {split: task.evaluator(ctx, model_dir, split) for split in (NEW, holdout)}
    scores: dict[str, dict] = {
        split: {"images": e.size, "split": split} for split, e in evaluators.items()
    }
    with tempfile.TemporaryDirectory(prefix="tango-champion-") as folder:
        pulled = Path(folder) / "artifact"
        pull_dir(record["artifact"], pulled, name=version)
        for role, path in (("champion", pulled), ("challenger", artifact)):
            predictor = load_artifact(path, threads=threads)
            try:
                for split, evaluator in evaluators.items():
                    metric = evaluator.quality.name
                    scores[split][role] = float(evaluator.evaluate(predictor, target.batch)[metric])
                    scores[split]["label"] = evaluator.quality.label
            finally:
                predictor.close()
    return scores


def _checks(
    ctx: StageContext, scores: dict[str, dict], version: str, margin: float, tolerance: float
) -> list[dict]:
    new, holdout = scores[NEW], next(v for k, v in scores.items() if k != NEW)
    where = "the holdout" if holdout["split"] == HOLDOUT else f"the {holdout['split']} split"
    checks = []
    for part, place, limit in (
        (new, f"new data ({new['images']} images)", new["champion"] + margin),
        (holdout, f"{where} ({holdout['images']} images)", holdout["champion"] - tolerance),
    ):
        passed = part["challenger"] >= limit
        checks.append(
            {
                "check": f"{part['label']} on {place} vs production {version} "
                f"({part['champion']:.4f}"
                + (f" + margin {margin:g})" if part is new else f" - tolerance {tolerance:g})"),
                "value": part["challenger"],
                "limit": limit,
                "comparison": ">=",
                "champion": part["champion"],
                "production": version,
                "status": "pass" if passed else "fail",
            }
        )
    ctx.reporter.log(
        f"champion/challenger: new data {new['challenger']:.4f} vs {new['champion']:.4f}, "
        f"{where} {holdout['challenger']:.4f} vs {holdout['champion']:.4f} ({version})"
    )
    return checks
