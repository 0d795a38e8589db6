"""``tango deploy``: a self-contained bundle per target, runnable with numpy, Pillow and the
engine runtime only (no torch, no tango_ci). See :mod:`tango_ci.runtime.bundle` for the layout.

The bundle is written to a temporary folder beside the destination and renamed into place, so
a failed build leaves nothing behind and an existing destination is never overwritten.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from tango_ci.compile import read_artifact
from tango_ci.contracts import TrainedModel
from tango_ci.exceptions import TangoError
from tango_ci.plugins import get_task
from tango_ci.printable import printable
from tango_ci.rundir import RunDir, display, file_sha256, read_json, read_record, write_json
from tango_ci.runtime.bundle import MANIFEST, SCHEMA, BundleError

RUNTIME_SOURCE = Path(__file__).resolve().parents[1] / "runtime"
#: the engines a bundle can be built for, and the Python distributions their runtime needs on
#: the device (the first pinned to the version the artifact records, the others to this host's)
ENGINE_PACKAGES = {
    "onnxruntime": ("onnxruntime",),
    "tvm": ("apache-tvm", "apache-tvm-ffi"),
    "tensorrt": ("tensorrt", "cuda-python"),
}


def requirements(engine: str, built: dict) -> list[str]:
    """``requirements.txt`` of a bundle: numpy, Pillow and the engine's runtime, pinned."""
    from importlib.metadata import PackageNotFoundError, version

    lines = ["numpy", "Pillow"]
    for index, package in enumerate(ENGINE_PACKAGES[engine]):
        pinned = built.get(engine) if index == 0 else None
        if not pinned:
            try:
                pinned = version(package)
            except PackageNotFoundError:
                pinned = None
        lines.append(f"{package}=={pinned}" if pinned else package)
    return lines


def build_bundle(spec, run: RunDir, target: str, out: Path, version: str | None = None) -> dict:
    """Write the bundle of ``target`` from ``run`` into ``out`` (which must not exist, or be
    an empty folder); returns its manifest."""
    metrics_path = run.stage_dir("bench") / target / "metrics.json"
    if not metrics_path.is_file():
        raise TangoError(
            f"run {run.id}: target {target} was not measured ({display(metrics_path)} is "
            f"missing); run `tango bench projects/{spec.name} --run {run.id}` first"
        )
    metrics = read_json(metrics_path)
    # the artifact bench measured, found in this run's compile stage (the path metrics.json
    # recorded is the measuring machine's)
    artifact = run.stage_dir("compile") / target
    if not (artifact / "artifact.json").is_file():
        artifact = artifact / f"{metrics['engine']}-{metrics['precision']}"
    if not (artifact / "artifact.json").is_file():
        raise TangoError(f"run {run.id}: the artifact of target {target} is not in compile/")
    model = read_record(TrainedModel, run.model_dir(target))
    identity = {"project": spec.name, "target": target, "run": run.id}
    identity["gate"] = gate_verdict(run, target)
    bench = {
        "p50_ms": metrics["latency"]["p50_ms"],
        "p95_ms": metrics["latency"]["p95_ms"],
        "quality": metrics["quality"],
        "end_to_end": metrics.get("end_to_end"),
        "host": metrics.get("host", {}).get("cpu"),
        "runner": metrics.get("runner"),
        "batch": metrics.get("batch", 1),
    }
    reference = get_task(spec.task).reference_images(run)
    return _assemble(
        spec, artifact, model, identity, bench, out, version or f"run {run.id}", reference
    )


def gate_verdict(run: RunDir, target: str) -> dict:
    """The gate's verdict on ``target`` in ``run``: ``passed`` (None: the gate did not run, or
    its file does not say) and the names of the checks it failed (the first 20, cut short); a
    bundle records it, so a failed model is never mistaken. A run folder may come as an
    artifact: anything but the decision's own shape counts as no verdict."""
    path = run.stage_dir("gate") / "decision.json"
    decision = read_json(path) if path.is_file() else None
    targets = decision.get("targets") if isinstance(decision, dict) else None
    found = targets.get(target) if isinstance(targets, dict) else None
    if not isinstance(found, dict) or not isinstance(found.get("passed"), bool):
        return {"passed": None, "failed": []}
    checks = found.get("checks")
    checks = checks if isinstance(checks, list) else []
    failed = [
        printable(str(c.get("check")))[:100]
        for c in checks
        if isinstance(c, dict) and c.get("status") == "fail"
    ]
    return {"passed": found["passed"], "failed": failed[:20]}


def bundle_from_artifact(spec, artifact: Path, record: dict, out: Path, version: str) -> dict:
    """Write the bundle of a registry version whose artifact was pulled into ``artifact``
    (``tango pull``): classes from its record, the input size from the network itself, the
    monitoring reference from the project's validation images where they are here."""
    built = read_artifact(artifact)
    model_file = artifact / built["file"]
    size = _input_size(model_file) if model_file.suffix == ".onnx" else spec.data.image_size
    classes = record.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise TangoError(f"{version}: its record lists no class names")
    model = SimpleNamespace(image_size=size, classes=tuple(classes))
    identity = {k: record.get(k) for k in ("project", "target", "run")}
    metrics = record.get("metrics", {})
    bench = {"p50_ms": metrics.get("p50_ms"), "p95_ms": metrics.get("p95_ms"), "metrics": metrics}
    bench["runner"] = record.get("runner")
    reference = get_task(spec.task).reference_from_data(spec)
    return _assemble(spec, artifact, model, identity, bench, out, version, reference)


def _input_size(model_file: Path) -> int:
    """The square input size an ONNX network was exported for."""
    import onnx

    shape = onnx.load(str(model_file), load_external_data=False).graph.input[0].type.tensor_type
    dims = [d.dim_value for d in shape.shape.dim]
    if len(dims) != 4 or dims[2] <= 0 or dims[2] != dims[3]:
        raise TangoError(f"{display(model_file)}: input shape {dims} is not N x 3 x S x S")
    return int(dims[2])


def _assemble(
    spec,
    artifact: Path,
    model,
    identity: dict,
    bench: dict,
    out: Path,
    version: str,
    reference: tuple | None = None,
) -> dict:
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TangoError(f"{display(out)} exists and is not empty; nothing was written")
    built = read_artifact(artifact)
    engine = built.get("engine")
    if engine not in ENGINE_PACKAGES:
        raise TangoError(
            f"target {identity.get('target')}: its artifact is {engine}; bundles are built for "
            f"{', '.join(ENGINE_PACKAGES)} artifacts (set engine: onnxruntime, tvm, tensorrt or auto)"
        )
    model_file = artifact / built["file"]
    specs = get_task(spec.task).bundle_specs(spec, model)
    if specs is None:
        raise TangoError(f"the {spec.task} task cannot be bundled")
    pre, post = specs
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        (work / "model").mkdir()
        copied = work / "model" / built["file"]
        shutil.copyfile(model_file, copied)
        if file_sha256(copied) != built["sha256"]:  # the copy: the file may change after a check
            raise TangoError(f"{display(model_file)}: sha256 differs from its artifact.json")
        runtime = work / "tango_runtime"
        runtime.mkdir()
        for source in sorted(RUNTIME_SOURCE.glob("*.py")):
            shutil.copyfile(source, runtime / source.name)
        write_json(work / "preprocess.json", pre)
        write_json(work / "postprocess.json", post)
        write_json(work / "labels.json", list(model.classes))
        (work / "requirements.txt").write_text("\n".join(requirements(engine, built)) + "\n")
        files = {
            p.relative_to(work).as_posix(): file_sha256(p)
            for p in sorted(work.rglob("*"))
            if p.is_file()
        }
        manifest = {
            "schema": SCHEMA,
            **identity,
            "version": version,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "engine": engine,
            "precision": built.get("precision"),
            "batch": bench.pop("batch", 1),
            "model": f"model/{built['file']}",
            "providers": built.get("providers", ["CPUExecutionProvider"]),
            "device": built.get("device", "cpu"),
            "session": built.get("session", {}),
            "recipe": built.get("recipe"),
            "runner": bench.pop("runner", None),
            "bench": bench,
            "files": files,
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if reference is not None:  # the bundle's own answers on the evaluation images
            from tango_ci.monitor import REFERENCE, write_reference

            images, split = reference
            try:  # the bundle's first load: a model the runtime refuses is refused here
                answers = write_reference(work, images, split)
            except BundleError as exc:
                raise TangoError(f"the bundle does not load: {exc}; nothing was written") from None
            write_json(work / REFERENCE, answers)
            manifest["files"][REFERENCE] = file_sha256(work / REFERENCE)
            (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            out.rmdir()
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


__all__ = ["build_bundle", "bundle_from_artifact"]
