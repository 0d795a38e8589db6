"""HTTP for ``serve``: the request handler, the rate limiter and a server that caps its
connections. The routes and what they answer are in server.py.

Every answer is JSON, errors included (also those http.server makes itself: a malformed
request line, over-long headers, an unknown method); every error closes the connection, so a
body left unread can never be parsed as the next request. A body comes with one
Content-Length and no Transfer-Encoding, and a GET with none: a proxy in front that framed it
the other way would take what this server reads as a body, or as the next request, for the
other (request smuggling). A client that sends nothing for ``timeout`` seconds (headers or
body) is answered 408, or hung up on; a request whose line, headers and body have not all
arrived within ``REQUEST_TIMEOUTS`` times that is hung up on (a byte now and then would
otherwise hold a connection for ever); a client that goes away is forgotten quietly. Over
``max_connections`` open connections, or ``max_per_client`` from one address, a new one is
answered 503 and closed before any thread starts for it.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from .multipart import MultipartError, file_part, is_multipart

if TYPE_CHECKING:
    from .server import Service

#: a request must arrive whole within this many read timeouts
REQUEST_TIMEOUTS = 4
#: an oversized body is read and dropped up to this size before the 413 (then hung up on)
DRAIN_LIMIT = 256 * 2**20
#: a Content-Length of more digits than this is refused without being converted
MAX_LENGTH_DIGITS = 18


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RateLimiter:
    """A token bucket per client address: ``rate`` requests a second, bursts of ``rate``.
    Buckets refilled to the brim are forgotten once ``max_clients`` are held, so a stream of
    new addresses cannot grow the table without bound."""

    def __init__(
        self, rate: float, max_clients: int = 4096, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.max_clients, self.clock = rate, max_clients, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many clients' buckets are held."""
        return len(self._buckets)

    def allow(self, client: str) -> bool:
        if self.rate <= 0:
            return True
        now = self.clock()
        with self._lock:
            if len(self._buckets) >= self.max_clients:  # a refilled bucket is a new client's
                self._buckets = {
                    c: (t, last)
                    for c, (t, last) in self._buckets.items()
                    if t + (now - last) * self.rate < self.rate
                }
            tokens, last = self._buckets.get(client, (self.rate, now))
            tokens = min(self.rate, tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[client] = (tokens, now)
                return False
            self._buckets[client] = (tokens - 1, now)
            return True


def content_length(text: str | None, max_bytes: int) -> int:
    """The body's length from its header: 411 when missing or not ASCII digits (``"²"`` is a
    digit to ``str.isdigit``, not to ``int``), 413 when over ``max_bytes``."""
    if text is None:
        raise RequestError(411, "Content-Length is required")
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        raise RequestError(411, "Content-Length must be a number of bytes")
    if len(text) > MAX_LENGTH_DIGITS:
        raise RequestError(413, f"request body over {max_bytes} bytes")
    return int(text)


def make_handler(
    service: Service,
    token: str | None,
    max_bytes: int,
    limiter: RateLimiter,
    read_timeout: float,
):
    class Handler(BaseHTTPRequestHandler):
        server_version = "tango-runtime"
        protocol_version = "HTTP/1.1"
        timeout = read_timeout  # StreamRequestHandler.setup puts it on the socket

        def setup(self) -> None:
            super().setup()
            # the answer goes out as headers then body: without this, Nagle's algorithm and
            # the client's delayed ACK hold the body ~40 ms on a kept-alive connection
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def handle(self) -> None:
            try:
                super().handle()
            except (ConnectionError, TimeoutError):
                self.close_connection = True  # the client went away or stalled: no one to answer

        def handle_one_request(self) -> None:
            self.arrived = threading.Event()  # set once the line, headers and body are read
            # a kept-alive connection may sit idle (up to the read timeout) before its next
            # request: the request's own clock starts at its first byte
            try:
                self.rfile.peek(1)  # type: ignore[attr-defined]  # a BufferedReader
            except (ConnectionError, TimeoutError):
                self.close_connection = True
                return
            timer = threading.Timer(REQUEST_TIMEOUTS * read_timeout, self._hang_up_if_slow)
            timer.daemon = True
            timer.start()
            try:
                super().handle_one_request()
            finally:
                timer.cancel()

        def _hang_up_if_slow(self) -> None:
            if not self.arrived.is_set():
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

        def log_message(self, format: str, *args: Any) -> None:
            return  # requests are logged to the prediction log, not stderr

        def _send(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if status >= 400:
                # the request's body may be unread: it must not be taken for the next request
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None):
            """http.server's own refusals (bad request line, unknown method), as JSON."""
            if self.command == "HEAD":
                return super().send_error(code, message, explain)
            self.close_connection = True
            self._send(code, {"error": message or HTTPStatus(code).phrase})

        def _guard(self) -> None:
            if not limiter.allow(self.client_address[0]):
                raise RequestError(429, "too many requests")
            if token is not None:
                given = self.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    raise RequestError(401, "a valid bearer token is required")

        def _drain(self, length: int) -> None:
            """Read and drop an oversized body (up to DRAIN_LIMIT), so the client gets its 413
            instead of a broken pipe; beyond that, or when it stalls, the connection is closed."""
            self.close_connection = True
            left = min(length, DRAIN_LIMIT)
            try:
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    left -= len(chunk)
            except TimeoutError:
                pass

        def _body(self) -> bytes:
            # a body framed two ways is read one way here and maybe the other by a proxy in
            # front: what one takes for the body the other would serve as a request
            if "Transfer-Encoding" in self.headers:
                raise RequestError(
                    400 if "Content-Length" in self.headers else 411,
                    "Transfer-Encoding is not accepted; send the body with a Content-Length",
                )
            if len(self.headers.get_all("Content-Length", [])) > 1:
                raise RequestError(400, "Content-Length is given more than once")
            try:
                length = content_length(self.headers.get("Content-Length"), max_bytes)
            except RequestError as exc:
                if exc.status == 413:
                    self._drain(DRAIN_LIMIT)
                raise
            if length > max_bytes:
                self._drain(length)
                raise RequestError(413, f"request body over {max_bytes} bytes")
            try:
                content = self.rfile.read(length)
            except TimeoutError:
                raise RequestError(
                    408, f"the body did not arrive within {read_timeout:g} s"
                ) from None
            if len(content) < length:
                raise RequestError(400, "the body is shorter than its Content-Length")
            self.arrived.set()
            return content

        def _image(self, content: bytes) -> bytes:
            """The image of a raw body, or of a ``multipart/form-data`` one's file part."""
            content_type = self.headers.get("Content-Type")
            if content_type is None or not is_multipart(content_type):
                return content
            try:
                return file_part(content, content_type)
            except MultipartError as exc:
                raise RequestError(400, str(exc)) from None

        def _model(self, parts: list[str]) -> None:
            if parts[2] != service.name:
                raise RequestError(
                    404, f"no model '{parts[2][:64]}'; this server has '{service.name}'"
                )

        def do_GET(self) -> None:
            self.arrived.set()  # a GET's body is never read (an error closes the connection)
            try:
                self._guard()
                if "Transfer-Encoding" in self.headers or any(
                    length.strip() != "0" for length in self.headers.get_all("Content-Length", [])
                ):  # on a kept-alive connection its body would be read as the next request
                    raise RequestError(400, "a GET request has no body")
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
                content = self._body()
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) == 4 and parts[:2] == ["v2", "models"]:
                    self._model(parts)
                    if parts[3] == "infer":
                        return self._send(200, service.infer_json(content))
                    if parts[3] == "image":
                        return self._send(200, service.image(self._image(content)))
                raise RequestError(404, "no such endpoint")
            except RequestError as exc:
                self._send(exc.status, {"error": str(exc)})
            except (ConnectionError, TimeoutError):
                raise  # no one to answer: handle() closes the connection
            except Exception as exc:
                self._send(500, {"error": f"{type(exc).__name__}"})

        def _not_allowed(self) -> None:
            self.arrived.set()
            self._send(405, {"error": f"{self.command} is not allowed; use GET or POST"})

        do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    return Handler


def parse_json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        raise RequestError(400, "the body is not JSON") from None
    except RecursionError:
        raise RequestError(400, "the body is JSON nested too deeply") from None


class CappedServer(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` of them and ``max_per_client``
    from one address (0: no cap per address, as behind a proxy): a connection over either cap
    is answered 503 from the accepting thread, without waiting for its request."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type,
        max_connections: int,
        max_per_client: int = 0,
    ) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_connections)
        self.max_per_client = max_per_client
        self._open: dict[str, int] = {}
        self._open_lock = threading.Lock()

    def _take(self, client: str) -> bool:
        with self._open_lock:
            if self.max_per_client and self._open.get(client, 0) >= self.max_per_client:
                return False
            if not self._slots.acquire(blocking=False):
                return False
            self._open[client] = self._open.get(client, 0) + 1
            return True

    def _give_back(self, client: str) -> None:
        with self._open_lock:
            left = self._open.pop(client, 1) - 1
            if left > 0:
                self._open[client] = left
            self._slots.release()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._take(client_address[0]):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._give_back(client_address[0])
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._give_back(client_address[0])

    def _refuse(self, request: socket.socket) -> None:
        body = json.dumps({"error": "too many connections; try again later"}).encode()
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
        )
        try:
            request.setblocking(False)  # this is the accepting thread: it must not wait
            with contextlib.suppress(OSError):  # what has arrived, so close() is not a RST
                request.recv(1 << 16)
            request.sendall(head.encode() + body)
        except OSError:
            pass
        finally:
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that fails (reset, broken pipe) is the client's business: no trace."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)
