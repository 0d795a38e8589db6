"""``serve``: a bundle behind the Open Inference Protocol (v2, as KServe and Triton speak it).

- ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2`` (server metadata),
  ``/v2/models/NAME`` (model metadata), ``/v2/models/NAME/ready``;
- ``POST /v2/models/NAME/infer``: JSON tensors in (``inputs: [{name, shape, datatype, data}]``),
  the network's outputs out;
- ``POST /v2/models/NAME/image``: an image file as the body, the answer (class or boxes) out,
  for people and curl.

Limits: request bodies over ``max_bytes`` get 413, clients over ``rate`` requests a second 429,
a missing or wrong bearer token 401, anything malformed a 4xx JSON ``{"error": ...}``; the
server keeps serving. It binds to 127.0.0.1 unless told otherwise. With a challenger it runs
``shadow`` (both answer, the champion's answer is returned, both are logged) or ``canary``
(a ``weight`` share of requests is answered by the challenger); every answer names the version
that gave it. Every answered request is logged (logs.py) before the answer is sent.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import random
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import Bundle
from .images import fit, read_rgb
from .logs import PredictionLog, input_summary

DATATYPES = {"FP32": np.float32, "FP16": np.float16, "FP64": np.float64}
MAX_ELEMENTS = 64 * 2**20
#: an oversized body is read and dropped up to this size before the 413 (then hung up on)
DRAIN_LIMIT = 256 * 2**20


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RateLimiter:
    """A token bucket per client address: ``rate`` requests a second, bursts of ``rate``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (self.rate, now))
            tokens = min(self.rate, tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[client] = (tokens, now)
                return False
            self._buckets[client] = (tokens - 1, now)
            return True


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

    def infer(self, body: dict) -> dict:
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
            raise RequestError(400, "'inputs' must be a list of one tensor")
        tensor = inputs[0]
        datatype = tensor.get("datatype")
        if datatype not in DATATYPES:
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
            or not 1 <= shape[0] <= 1024
        ):
            raise RequestError(400, f"shape must be [N, 3, {size}, {size}] with N 1-1024")
        count = int(np.prod(shape))
        if count > MAX_ELEMENTS:
            raise RequestError(413, "tensor too large")
        data = tensor.get("data")
        try:
            array = np.asarray(data, dtype=DATATYPES[datatype])
        except (TypeError, ValueError):
            raise RequestError(400, "'data' is not a list of numbers") from None
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
        try:
            image = read_rgb(io.BytesIO(content))
        except Exception:
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


def make_handler(service: Service, token: str | None, max_bytes: int, limiter: RateLimiter):
    class Handler(BaseHTTPRequestHandler):
        server_version = "tango-runtime"
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # the answer goes out as headers then body: without this, Nagle's algorithm and
            # the client's delayed ACK hold the body ~40 ms on a kept-alive connection
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            return  # requests are logged to the prediction log, not stderr

        def _send(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _guard(self) -> None:
            if not limiter.allow(self.client_address[0]):
                raise RequestError(429, "too many requests")
            if token is not None:
                given = self.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    raise RequestError(401, "a valid bearer token is required")

        def _drain(self, length: int) -> None:
            """Read and drop an oversized body (up to DRAIN_LIMIT), so the client gets its 413
            instead of a broken pipe; beyond that the connection is closed."""
            self.close_connection = True
            left = min(length, DRAIN_LIMIT)
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 20))
                if not chunk:
                    break
                left -= len(chunk)

        def _model(self, parts: list[str]) -> None:
            if parts[2] != service.name:
                raise RequestError(
                    404, f"no model '{parts[2][:64]}'; this server has '{service.name}'"
                )

        def do_GET(self) -> None:
            try:
                self._guard()
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts == ["v2", "health", "live"]:
                    return self._send(200, {"live": True})
                if parts == ["v2", "health", "ready"]:
                    return self._send(200, {"ready": True})
                if parts == ["v2"]:
                    return self._send(
                        200, {"name": "tango-runtime", "version": "1", "extensions": []}
                    )
                if len(parts) >= 3 and parts[:2] == ["v2", "models"]:
                    self._model(parts)
                    if len(parts) == 3:
                        return self._send(200, service.model_metadata())
                    if parts[3:] == ["ready"]:
                        return self._send(200, {"name": service.name, "ready": True})
                raise RequestError(404, "no such endpoint")
            except RequestError as exc:
                self._send(exc.status, {"error": str(exc)})

        def do_POST(self) -> None:
            try:
                self._guard()
                length = self.headers.get("Content-Length")
                if length is None or not length.isdigit():
                    raise RequestError(411, "Content-Length is required")
                if int(length) > max_bytes:
                    self._drain(int(length))
                    raise RequestError(413, f"request body over {max_bytes} bytes")
                content = self.rfile.read(int(length))
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) == 4 and parts[:2] == ["v2", "models"]:
                    self._model(parts)
                    if parts[3] == "infer":
                        try:
                            body = json.loads(content)
                        except (ValueError, UnicodeDecodeError):
                            raise RequestError(400, "the body is not JSON") from None
                        return self._send(200, service.infer(body))
                    if parts[3] == "image":
                        return self._send(200, service.image(content))
                raise RequestError(404, "no such endpoint")
            except RequestError as exc:
                self._send(exc.status, {"error": str(exc)})
            except Exception as exc:
                self._send(500, {"error": f"{type(exc).__name__}"})

    return Handler


def serve(
    service: Service,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    max_bytes: int = 8 * 2**20,
    rate: float = 100.0,
) -> ThreadingHTTPServer:
    """A started server (its thread is a daemon); ``server.shutdown()`` stops it."""
    handler = make_handler(service, token, max_bytes, RateLimiter(rate))
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
