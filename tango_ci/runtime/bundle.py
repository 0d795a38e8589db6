"""A deployment bundle, loaded only after every file matches the manifest's sha256.

Layout (``tango deploy`` writes it)::

    manifest.json      engine, precision, batch, files -> sha256, registry version, bench figures
    preprocess.json    how an image becomes the network's input (see images.py)
    postprocess.json   how outputs become answers (softmax; or detection thresholds)
    labels.json        class names, in output order
    model/...          the compiled artifact
    tango_runtime/...  this package
    requirements.txt   numpy, Pillow and the engine runtime

A file that differs from the manifest, a file the manifest names outside the bundle, a link,
or a manifest that is not strict JSON is refused with one line naming it. The files are data:
every field is type-checked where it is read, and a model its engine cannot load (or whose
input does not match preprocess.json) is refused at load, never at the first request.

Every listed file is copied into a private folder while it is hashed, and loaded from that
copy: a file swapped in the bundle after its check is never the one loaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from .engines import GRAPH_OPTIMISATIONS, OnnxRuntimeRunner, TensorRtRunner, TvmRunner
from .images import ImageError, fit, read_rgb, to_input
from .postprocess import Thresholds, decode, softmax, unletterbox

MANIFEST = "manifest.json"
MAX_JSON_BYTES = 4 * 2**20
SCHEMA = "tango-bundle/1"


class BundleError(Exception):
    """A bundle that cannot be trusted or used; the message is one line naming the file."""


def sha256(path: Path, copy_to: Path | None = None) -> str:
    """The file's sha256, of the very bytes written to ``copy_to`` when given."""
    # tango_ci.jsonfiles.file_sha256 again, on purpose: a bundle runs without tango_ci
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if copy_to is None:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
            return digest.hexdigest()
        copy_to.parent.mkdir(parents=True, exist_ok=True)
        with open(copy_to, "xb") as copy:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
                copy.write(block)
    return digest.hexdigest()


def refuse_constant(constant: str) -> float:
    """``json.loads``'s ``parse_constant``: NaN and Infinity are no JSON numbers."""
    raise ValueError(f"{constant} is not a number")


def _unique(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"key '{next(k for k in keys if keys.count(k) > 1)}' is repeated")
    return dict(pairs)


def read_json(path: Path, name: str) -> Any:
    """Strict JSON (no NaN, no repeated key), size-limited, not behind a link."""
    if path.is_symlink() or not path.is_file():
        raise BundleError(f"{name}: missing or not a regular file")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise BundleError(f"{name}: larger than {MAX_JSON_BYTES >> 20} MiB")
    try:
        return json.loads(
            path.read_text(encoding="utf-8"),
            parse_constant=refuse_constant,
            object_pairs_hook=_unique,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{name}: not valid JSON ({exc})") from None
    except RecursionError:
        raise BundleError(f"{name}: not valid JSON (nested too deeply)") from None


def _integer(values: dict, key: str, default: int, largest: int, where: str) -> int:
    value = values.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= largest:
        raise BundleError(f"{where}: '{key}' must be an integer 1-{largest}")
    return value


def _fraction(values: dict, key: str, default: float, where: str) -> float:
    value = values.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise BundleError(f"{where}: '{key}' must be a number 0-1")
    return float(value)


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BundleError(f"{what} must be a list of strings")
    return value


def verify(folder: Path, manifest: dict, copy_to: Path | None = None) -> dict[str, str]:
    """Check every file the manifest lists (copied into ``copy_to`` as it is hashed, when
    given); the verified (relative path -> sha256)."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{MANIFEST}: no 'files' object")
    root = folder.resolve()
    for relative, expected in files.items():
        parts = PurePosixPath(relative).parts if isinstance(relative, str) else ()
        # written as PurePosixPath writes it: ./a, a//b and a/./b would be a second name of a
        if (
            not parts
            or relative.startswith("/")
            or str(PurePosixPath(relative)) != relative
            or ".." in parts
            or "\\" in relative
        ):
            raise BundleError(f"{MANIFEST}: '{_shown(relative)}' is not a path inside the bundle")
        path = folder / relative
        try:  # a name too long for the file system, or holding a NUL, is no file either
            if path.is_symlink() or not path.is_file():
                raise BundleError(f"{_shown(relative)}: missing or not a regular file")
            inside = path.resolve().is_relative_to(root)
        except (OSError, ValueError):
            raise BundleError(f"{_shown(relative)}: missing or not a regular file") from None
        if not inside:
            raise BundleError(f"{_shown(relative)}: leads out of the bundle")
        if sha256(path, None if copy_to is None else copy_to / relative) != expected:
            raise BundleError(
                f"{_shown(relative)}: sha256 differs from {MANIFEST} (tampered or damaged)"
            )
    return files


def _shown(relative: object) -> str:
    """A name from the manifest (untrusted text) as one short line."""
    return ascii(str(relative))[1:-1][:80]


class Bundle:
    """A verified bundle, ready to answer images or tensors."""

    def __init__(self, folder: Path | str, threads: int | None = None) -> None:
        self.folder = Path(folder)
        manifest = read_json(self.folder / MANIFEST, MANIFEST)
        if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
            raise BundleError(f"{MANIFEST}: not a {SCHEMA} manifest")
        with tempfile.TemporaryDirectory(prefix="tango-bundle-") as private:
            os.chmod(private, 0o700)
            self._load(
                Path(private), manifest, verify(self.folder, manifest, Path(private)), threads
            )

    def _load(self, folder: Path, manifest: dict, verified: dict, threads: int | None) -> None:
        """Everything from ``folder``, the private copy of the verified files."""
        model = manifest.get("model")
        if not isinstance(model, str) or model not in verified:
            raise BundleError(f"{MANIFEST}: 'model' must name one of the listed files")
        for key in ("version", "target"):
            if not isinstance(manifest.get(key, ""), str):
                raise BundleError(f"{MANIFEST}: '{key}' must be a string")
        for name in ("preprocess.json", "postprocess.json", "labels.json"):
            if name not in verified:
                raise BundleError(f"{MANIFEST}: {name} is not among the listed files")
        self.manifest = manifest
        # the verified bytes of every other listed JSON document at the top (the monitor's
        # reference), so a reader never opens the bundle folder again after the check
        self.documents = {
            name: (folder / name).read_bytes()
            for name in verified
            if "/" not in name
            and name.endswith(".json")
            and (folder / name).stat().st_size <= MAX_JSON_BYTES
        }
        self.preprocess = read_json(folder / "preprocess.json", "preprocess.json")
        self.postprocess = read_json(folder / "postprocess.json", "postprocess.json")
        self.labels = _strings(
            read_json(folder / "labels.json", "labels.json"), "labels.json: the file"
        )
        self._check_specs()
        self.batch = _integer(manifest, "batch", 1, 65536, MANIFEST)
        try:
            self.runner = self._runner(folder, manifest, threads)
        except BundleError:
            raise
        except ImportError as exc:
            raise BundleError(
                f"{model}: its engine's runtime is not installed here ({exc}); "
                "`pip install -r requirements.txt`"
            ) from None
        except Exception as exc:  # each engine has its own exception types (onnxruntime's
            # InvalidProtobuf is no RuntimeError): whatever the loader raises, the file is bad
            text = str(exc).splitlines()[0][:300] if str(exc) else ""
            raise BundleError(
                f"{model}: the engine cannot load it ({type(exc).__name__}: {text})"
            ) from None
        self._check_input()
        self.version = str(manifest.get("version", "unversioned"))

    def _runner(
        self, folder: Path, manifest: dict, threads: int | None
    ) -> OnnxRuntimeRunner | TvmRunner | TensorRtRunner:
        engine, model = manifest.get("engine"), folder / manifest["model"]
        if engine == "onnxruntime":
            providers = _strings(
                manifest.get("providers", ["CPUExecutionProvider"]), f"{MANIFEST}: 'providers'"
            )
            session = manifest.get("session", {})
            if not isinstance(session, dict):
                raise BundleError(f"{MANIFEST}: 'session' must be an object")
            if session.get("graph_optimization", "all") not in GRAPH_OPTIMISATIONS:
                raise BundleError(
                    f"{MANIFEST}: 'session.graph_optimization' must be one of "
                    f"{', '.join(GRAPH_OPTIMISATIONS)}"
                )
            if not isinstance(session.get("spinning", True), bool):
                raise BundleError(f"{MANIFEST}: 'session.spinning' must be true or false")
            return OnnxRuntimeRunner(model, threads, providers, session)
        if engine == "tensorrt":
            return TensorRtRunner(model, self.batch)
        if engine == "tvm":
            device = manifest.get("device", "cpu")
            if device not in ("cpu", "cuda"):
                raise BundleError(f"{MANIFEST}: TVM device '{str(device)[:20]}' is not cpu or cuda")
            return TvmRunner(model, device, self.batch)
        raise BundleError(
            f"{MANIFEST}: engine '{str(engine)[:40]}' is not served by this runtime "
            "(onnxruntime, tvm and tensorrt bundles)"
        )

    def _check_specs(self) -> None:
        spec = self.preprocess
        if not isinstance(spec, dict) or spec.get("kind") not in ("resize", "letterbox"):
            raise BundleError("preprocess.json: 'kind' must be resize or letterbox")
        size = spec.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 8192:
            raise BundleError("preprocess.json: 'size' must be an integer 1-8192")
        for key in ("mean", "std") if spec["kind"] == "resize" else ():
            value = spec.get(key)
            if (
                not isinstance(value, int | float)
                or not math.isfinite(value)
                or (value == 0 and key == "std")
            ):
                raise BundleError(f"preprocess.json: '{key}' must be a finite number")
        task = self.postprocess.get("task") if isinstance(self.postprocess, dict) else None
        if task not in ("classification", "detection"):
            raise BundleError("postprocess.json: 'task' must be classification or detection")
        if task == "detection":
            t = self.postprocess.get("thresholds", {})
            where = "postprocess.json: 'thresholds'"
            if not isinstance(t, dict):
                raise BundleError(f"{where} must be an object")
            self.thresholds = Thresholds(
                conf=_fraction(t, "conf", 0.25, where),
                iou=_fraction(t, "iou", 0.7, where),
                max_det=_integer(t, "max_det", 100, 100_000, where),
            )

    def _check_input(self) -> None:
        """The model's input (where it states its sizes) must be what preprocess.json makes:
        (N, 3, size, size); otherwise every request would fail in the engine."""
        shape = list(self.runner.input_shape)
        if len(shape) != 4:
            return  # engines that do not report their input shape (TVM, TensorRT)
        size = self.preprocess["size"]
        for got, wanted in zip(shape[1:], (3, size, size), strict=True):
            if isinstance(got, int) and got > 0 and got != wanted:
                raise BundleError(
                    f"preprocess.json: 'size' {size} makes (N, 3, {size}, {size}) inputs, "
                    f"the model takes {tuple(shape)}"
                )

    # ------------------------------------------------------------------ answers
    @property
    def task(self) -> str:
        return str(self.postprocess["task"])

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Raw outputs of the network for a preprocessed batch; an artifact built for a fixed
        batch size runs it in chunks of that size, the last padded (as bench did)."""
        size = self.runner.input_shape[0]
        if not isinstance(size, int) or size <= 0 or size == len(batch):
            return self.runner.run(batch)
        parts: list[list[np.ndarray]] = []
        for start in range(0, len(batch), size):
            chunk = batch[start : start + size]
            real = len(chunk)
            if real < size:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - real, axis=0)])
            parts.append([out[:real] for out in self.runner.run(chunk)])
        return [np.concatenate(outs) for outs in zip(*parts, strict=True)]

    def answer(self, images: list[np.ndarray]) -> list[dict]:
        """Answers for decoded uint8 HWC RGB images."""
        fitted, hows = zip(*(fit(image, self.preprocess) for image in images), strict=True)
        raw = self.run(to_input(np.stack(fitted), self.preprocess))
        if self.task == "classification":
            probabilities = softmax(raw[0])
            return [self._class_answer(p) for p in probabilities]
        answers = []
        for image, how, boxes in zip(
            images, hows, decode(np.asarray(raw[0]), self.thresholds), strict=True
        ):
            boxes = unletterbox(boxes, how, image.shape[0], image.shape[1])
            answers.append({"boxes": [self._box(b) for b in boxes]})
        return answers

    def answers(self, raw: list[np.ndarray]) -> list[dict]:
        """Answers from raw outputs of preprocessed inputs (boxes in input pixels)."""
        if self.task == "classification":
            return [self._class_answer(p) for p in softmax(raw[0])]
        return [
            {"boxes": [self._box(b) for b in boxes]}
            for boxes in decode(np.asarray(raw[0]), self.thresholds)
        ]

    def predict_files(self, paths: list[Path]) -> list[dict]:
        """Answers for image files; an ``ImageError`` naming the first that cannot be read."""
        images = []
        for path in paths:
            try:
                images.append(read_rgb(str(path)))
            except ImageError as exc:
                raise ImageError(f"{path}: {exc}") from None
        return self.answer(images)

    def _class_answer(self, probabilities: np.ndarray) -> dict:
        best = int(probabilities.argmax())
        return {
            "class": best,
            "label": self.labels[best] if best < len(self.labels) else str(best),
            "probability": float(probabilities[best]),
            "probabilities": [float(p) for p in probabilities],
        }

    def _box(self, row: np.ndarray) -> dict:
        cls = int(row[5])
        return {
            "class": cls,
            "label": self.labels[cls] if 0 <= cls < len(self.labels) else str(cls),
            "score": float(row[4]),
            "box": [float(v) for v in row[:4]],
        }
