"""The data stage: read the dataset once, split it, fingerprint it, save the arrays.

``test.npz`` (the test split) is for the gate and the report only; search and training read
``train.npz`` and ``val.npz``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tango_ci.context import StageContext
from tango_ci.data.dataset import TooManyBadImages, build_arrays
from tango_ci.data.layout import has_split_folders
from tango_ci.exceptions import TangoError
from tango_ci.rundir import display, write_json
from tango_ci.spec import find_repo_root


def ensure_data(ctx: StageContext) -> Path:
    """The project's data folder; when the spec has ``data.synth``, synthesised first if it is
    missing, and made again if synth made it with other settings."""
    spec = ctx.spec
    root = spec.data.resolved
    if root is None:
        raise RuntimeError("data.resolved is not set; load the project with load_project")
    if spec.data.synth is not None:
        _follow_synth(ctx, root)
    if not root.exists():
        raise TangoError(f"data folder {root} is missing; fetch it (`dvc pull`) or make it")
    return root


def _follow_synth(ctx: StageContext, root: Path) -> None:
    """Synthesise ``root`` when it is missing; when it is there but ``data.synth`` did not
    make it as the spec now says, use it as it is and say so: it is never deleted here (it may
    hold the user's own images, or be read by another run at this moment)."""
    from tango_ci.data.synth import STAMP, project_request, read_stamp, stamp_changes, synthesize

    spec = ctx.spec
    request = project_request(spec)
    if not root.exists():
        ctx.reporter.log(f"data folder {spec.data.path} is missing; synthesising it")
        synthesize(request)
        return
    found = read_stamp(root / STAMP)
    wanted = request.stamp()
    if found == wanted:
        return
    why = (
        f"data.synth made it with other settings ({stamp_changes(found, wanted)})"
        if found is not None
        else f"it has no readable {STAMP} stamp, so data.synth did not make it"
    )
    ctx.reporter.log(
        f"warning: data folder {spec.data.path} is used as it is: {why}; "
        f"`tango data synth {display(spec.folder)} --force` makes it again (deleting it)"
    )


def run(ctx: StageContext) -> None:
    spec = ctx.spec
    root = ensure_data(ctx)
    bar = ctx.reporter.task("reading images")
    failed = None
    try:
        built = build_arrays(
            root,
            image_size=spec.data.image_size,
            val_fraction=spec.data.split.val,
            test_fraction=spec.data.split.test,
            seed=spec.data.split.seed,
            max_bad_fraction=spec.data.max_bad_fraction,
            limit=find_repo_root(spec.folder),
            progress=lambda done, total: bar.update(completed=done, total=total),
        )
    except TooManyBadImages as exc:
        failed = exc
    finally:
        bar.close()
    if failed is not None:  # every file to fix at once, not one per run
        for bad in failed.bad_files:
            ctx.reporter.log(f"unreadable image: {bad['path']} ({bad['reason']})")
        raise failed
    folder = ctx.folder
    for split, (images, labels) in built["arrays"].items():
        path = folder / f"{split}.npz"
        np.savez(path, images=images, labels=labels)
        ctx.recorder.output_file(split, path)
    write_json(folder / "classes.json", built["classes"])
    write_json(folder / "files.json", built["files"])
    write_json(folder / "bad.json", built["bad"])
    for name in ("classes", "files", "bad"):
        ctx.recorder.output_file(name, folder / f"{name}.json")
    counts = {s: len(labels) for s, (_, labels) in built["arrays"].items()}
    if spec.gate.challenger is not None:
        counts.update(_challenger_sets(ctx, built, find_repo_root(spec.folder)))
    for warning in built["warnings"]:
        ctx.reporter.log(f"warning: {warning}")
    for bad in built["bad"]:
        ctx.reporter.log(f"unreadable image skipped: {bad['path']} ({bad['reason']})")
    ctx.recorder.inputs["dataset"] = {
        "path": str(root),
        "fingerprint": built["fingerprint"],
        "files": len(built["files"]) + len(built["bad"]),
    }
    ctx.reporter.log(
        f"{len(built['classes'])} classes; images: "
        + ", ".join(f"{split} {count}" for split, count in counts.items())
        + (f" ({len(built['bad'])} unreadable left out)" if built["bad"] else "")
    )
    ctx.recorder.summary.update(
        {
            "classes": built["classes"],
            "images": counts,
            "bad_images": len(built["bad"]),
            "test_split": test_source(root, spec.data.split.test, "test" in counts),
            "image_size": spec.data.image_size,
            "fingerprint": built["fingerprint"],
        }
    )


def _challenger_sets(ctx: StageContext, built: dict, limit: Path) -> dict[str, int]:
    """``new.npz`` and ``holdout.npz`` for the champion/challenger gate; their image counts."""
    from tango_ci.data.challenger import challenger_sets

    spec = ctx.spec
    sets = challenger_sets(
        spec.gate.challenger, built["classes"], spec.data.image_size, limit, built["files"]
    )
    counts = {}
    for split, found in sets.items():
        if found is None:
            ctx.reporter.log(f"gate.challenger: no {split} images yet")
            continue
        images, labels, files = found
        np.savez(ctx.folder / f"{split}.npz", images=images, labels=labels)
        write_json(ctx.folder / f"{split}-files.json", files)
        ctx.recorder.output_file(split, ctx.folder / f"{split}.npz")
        counts[split] = len(labels)
    return counts


def test_source(root: Path, fraction: float, made: bool) -> str:
    """Where the test split came from, in words (the data stage's summary)."""
    if not made:
        return "none (data.split.test is 0)"
    if has_split_folders(root) and (root / "test").is_dir():
        return "the dataset's test/ folder"
    return (
        f"about {fraction * 100:g}% of each class's training images, chosen by their content "
        "and data.split.seed"
    )
