"""``serve``: a bundle behind the Open Inference Protocol (v2, as KServe and Triton speak it).

- ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2`` (server metadata),
  ``/v2/models/NAME`` (model metadata), ``/v2/models/NAME/ready``;
- ``POST /v2/models/NAME/infer``: JSON tensors in (``inputs: [{name, shape, datatype, data}]``),
  the network's outputs out;
- ``POST /v2/models/NAME/image``: an image file as the body, the answer (class or boxes) out,
  for people and curl.

Limits: request bodies over ``max_bytes`` and images declaring over 40 million pixels get 413,
at most ``pixel_budget`` pixels (80 million) are decoded at once over all requests (a JSON
body counts two pixels a byte while it is parsed; the others wait their turn), a JSON body
with more lists than a batch of 1024 nested by its shape is 400 unparsed, clients over
``rate`` requests a second 429, a missing or wrong bearer token
401, anything malformed a 4xx JSON ``{"error": ...}``; the server keeps serving (handler.py:
the HTTP side, with its timeout and connection cap). It binds to 127.0.0.1 unless told
otherwise. With a challenger it runs ``shadow`` (both answer, the champion's answer is
returned, both are logged) or ``canary`` (a ``weight`` share of requests is answered by the
challenger); every answer names the version that gave it. Every answered request is logged
(logs.py) before the answer is sent.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import Bundle
from .handler import CappedServer, RateLimiter, RequestError, make_handler, parse_json
from .images import MAX_PIXELS, ImageError, ImageTooLarge, fit, open_image, read_rgb
from .logs import PredictionLog, input_summary

__all__ = ["RateLimiter", "RequestError", "Service", "serve"]

DATATYPES = {"FP32": np.float32, "FP16": np.float16, "FP64": np.float64}
MAX_ELEMENTS = 64 * 2**20
MAX_BATCH = 1024
#: what parsing a JSON body costs, in decoded pixels per byte of it: an 8 MiB body of empty
#: lists took 280 MB to parse (36 bytes a byte); a decoded, resized and run pixel about 17
JSON_PIXELS_PER_BYTE = 2


class PixelBudget:
    """At most ``limit`` pixels decoded and answered at once, over all requests: a 130 KB PNG
    may declare 40 million pixels, about 700 MB while it is decoded, resized and run, and one
    client may hold many connections. Requests go in the order they came (a large one is not
    passed for ever by a stream of small ones); one over what is left waits, one over the whole
    budget waits to run alone, and one that waited ``wait_s`` seconds gets 503."""

    def __init__(self, limit: int, wait_s: float = 30.0) -> None:
        self.limit, self.used, self.wait_s = limit, 0, wait_s
        self._changed = threading.Condition()
        self._queue: collections.deque[object] = collections.deque()

    @contextlib.contextmanager
    def hold(self, pixels: int):
        pixels, ticket = min(max(pixels, 0), self.limit), object()
        with self._changed:
            self._queue.append(ticket)
            if not self._changed.wait_for(
                lambda: self._queue[0] is ticket and self.used + pixels <= self.limit,
                timeout=self.wait_s,
            ):
                self._queue.remove(ticket)
                self._changed.notify_all()  # the one behind may be the head now
                raise RequestError(503, "busy decoding other images; retry later")
            self._queue.popleft()
            self.used += pixels
            self._changed.notify_all()
        try:
            yield
        finally:
            with self._changed:
                self.used -= pixels
                self._changed.notify_all()


def declared_pixels(content: bytes) -> int:
    """The pixels ``content``'s header declares, without decoding it (0 where it has no
    header Pillow reads: read_rgb refuses it)."""
    try:
        with open_image(io.BytesIO(content)) as header:
            width, height = header.size
            return width * height
    except Exception:  # not an image, or one over MAX_PIXELS: read_rgb says which
        return 0


class Service:
    """The bundles, the routing between them and the log: everything but HTTP."""

    def __init__(
        self,
        champion: Bundle,
        challenger: Bundle | None = None,
        mode: str = "shadow",
        weight: float = 0.1,
        log: PredictionLog | None = None,
        seed: int | None = None,
        keep_images: Path | None = None,
        max_kept: int = 100_000,
        pixel_budget: int = 2 * MAX_PIXELS,
    ) -> None:
        if mode not in ("shadow", "canary"):
            raise ValueError(f"mode '{mode}' is not shadow or canary")
        self.champion, self.challenger, self.mode, self.weight = champion, challenger, mode, weight
        self.log = log
        # image requests kept by content hash, for labelling (tango label queue)
        self.keep_images, self.max_kept = keep_images, max_kept
        self._kept = 0
        if keep_images is not None:
            keep_images.mkdir(parents=True, exist_ok=True)
            self._kept = sum(1 for _ in keep_images.glob("*.img"))
        self.name = str(champion.manifest.get("target", "model"))
        self.pixels = PixelBudget(pixel_budget)
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ metadata
    def model_metadata(self) -> dict:
        size = int(self.champion.preprocess["size"])
        versions = [self.champion.version] + ([self.challenger.version] if self.challenger else [])
        return {
            "name": self.name,
            "versions": versions,
            "platform": "onnxruntime_onnx",
            "inputs": [{"name": "images", "datatype": "FP32", "shape": [-1, 3, size, size]}],
            "outputs": [{"name": "output0", "datatype": "FP32", "shape": [-1, -1]}],
            "parameters": {
                "task": self.champion.task,
                "labels": self.champion.labels,
                "mode": self.mode if self.challenger else None,
            },
        }

    # ------------------------------------------------------------------ routing
    def _serving(self) -> list[tuple[Bundle, str]]:
        """Who runs this request: (bundle, role), the one that answers first."""
        if self.challenger is None:
            return [(self.champion, "champion")]
        if self.mode == "shadow":
            return [(self.champion, "champion"), (self.challenger, "challenger")]
        with self._lock:
            draw = self._random.random()
        return [
            (self.challenger, "challenger") if draw < self.weight else (self.champion, "champion")
        ]

    def _run(
        self, request_id: str, content: bytes | None, summary_of: np.ndarray, work
    ) -> tuple[Any, str]:
        answer, version = None, ""
        digest, summary = input_summary(content, summary_of)
        for index, (bundle, role) in enumerate(self._serving()):
            began = time.perf_counter()
            result = work(bundle)
            latency = (time.perf_counter() - began) * 1000.0
            if self.log is not None:
                self.log.append(
                    {
                        "time": time.time(),
                        "request": request_id,
                        "model_version": bundle.version,
                        "role": role,
                        "latency_ms": latency,
                        "outputs": result if isinstance(result, dict) else bundle.answers(result),
                        "input_hash": digest,
                        "input_summary": summary,
                    }
                )
            if index == 0:
                answer, version = result, bundle.version
        return answer, version

    def infer_json(self, content: bytes) -> dict:
        """:meth:`infer` of a JSON body, parsed and answered inside the pixel budget (what
        parsing costs grows with the body, as decoding does with an image's pixels)."""
        size = int(self.champion.preprocess["size"])
        # lists and objects cost the most to parse (64 bytes for the 3 of "[],"): no more than
        # a batch nested by its shape, counted before parsing
        if content.count(b"[") + content.count(b"{") > 64 + MAX_BATCH * (4 + 3 * size):
            raise RequestError(
                400, f"the body holds more lists than an [N, 3, {size}, {size}] tensor"
            )
        with self.pixels.hold(JSON_PIXELS_PER_BYTE * len(content)):
            return self.infer(parse_json(content))

    def infer(self, body: dict) -> dict:
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
            raise RequestError(400, "'inputs' must be a list of one tensor")
        tensor = inputs[0]
        datatype = tensor.get("datatype")
        if not isinstance(datatype, str) or datatype not in DATATYPES:
            raise RequestError(
                400, f"datatype '{str(datatype)[:20]}' is not one of {', '.join(DATATYPES)}"
            )
        shape = tensor.get("shape")
        size = int(self.champion.preprocess["size"])
        if (
            not isinstance(shape, list)
            or len(shape) != 4
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
            or shape[1:] != [3, size, size]
            or not 1 <= shape[0] <= MAX_BATCH
        ):
            raise RequestError(400, f"shape must be [N, 3, {size}, {size}] with N 1-{MAX_BATCH}")
        count = int(np.prod(shape))
        if count > MAX_ELEMENTS:
            raise RequestError(413, "tensor too large")
        data = tensor.get("data")
        if not isinstance(data, list):
            raise RequestError(400, "'data' is not a list of numbers")
        if len(data) not in (count, shape[0]):  # flat, or nested by the shape: before numpy
            raise RequestError(400, f"'data' holds {len(data)} values, the shape {count}")
        try:  # without a dtype first: numpy would parse "1.5" and take true for 1
            values = np.asarray(data)
        except (TypeError, ValueError, OverflowError, RecursionError):
            values = np.asarray(None)
        if values.dtype.kind not in "iuf":
            raise RequestError(400, "'data' is not a list of numbers")
        array = values.astype(DATATYPES[datatype])
        if array.size != count:
            raise RequestError(400, f"'data' holds {array.size} values, the shape {count}")
        array = array.reshape(shape).astype(np.float32)
        if not np.isfinite(array).all():
            raise RequestError(400, "'data' holds NaN or infinite values")
        request_id = str(body.get("id") or uuid.uuid4())[:128]
        outputs, version = self._run(request_id, None, array, lambda b: b.run(array))
        return {
            "model_name": self.name,
            "model_version": version,
            "id": request_id,
            "outputs": [
                {
                    "name": f"output{i}",
                    "datatype": "FP32",
                    "shape": list(o.shape),
                    "data": np.asarray(o, np.float32).ravel().tolist(),
                }
                for i, o in enumerate(outputs)
            ],
        }

    def image(self, content: bytes) -> dict:
        with self.pixels.hold(declared_pixels(content)):
            return self._image(content)

    def _image(self, content: bytes) -> dict:
        try:
            image = read_rgb(io.BytesIO(content))
        except ImageTooLarge as exc:
            raise RequestError(413, f"the image is too large: {exc}") from None
        except ImageError:
            raise RequestError(400, "the body is not an image Pillow can read") from None
        fitted, _ = fit(image, self.champion.preprocess)
        request_id = str(uuid.uuid4())
        self._keep(content)
        answer, version = self._run(request_id, content, fitted, lambda b: b.answer([image])[0])
        return {"model_name": self.name, "model_version": version, "id": request_id, **answer}

    def _keep(self, content: bytes) -> None:
        """Store an image request's bytes as ``<sha256>.img`` (once), while under the cap."""
        if self.keep_images is None:
            return
        path = self.keep_images / f"{hashlib.sha256(content).hexdigest()}.img"
        if path.exists():
            return
        with self._lock:
            if self._kept >= self.max_kept:
                return
            self._kept += 1
        temporary = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        temporary.write_bytes(content)
        temporary.replace(path)


def serve(
    service: Service,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    max_bytes: int = 8 * 2**20,
    rate: float = 100.0,
    timeout: float = 30.0,
    max_connections: int = 64,
    max_per_client: int | None = None,
) -> CappedServer:
    """A started server (its thread is a daemon); ``server.shutdown()`` stops it. A client
    silent for ``timeout`` seconds is dropped; over ``max_connections``, or over
    ``max_per_client`` from one address (a quarter of the cap unless given; 0: none), a new
    one gets 503."""
    per_client = max(1, max_connections // 4) if max_per_client is None else max_per_client
    handler = make_handler(service, token, max_bytes, RateLimiter(rate), timeout)
    server = CappedServer((host, port), handler, max_connections, per_client)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
