"""serve against hostile clients, over raw sockets (what urllib will not send): bodies that
stall or never come, more connections than the cap, a body sent with a refused request (it
must not be parsed as the next request), a client that resets, a decompression bomb, JSON
nested too deeply, numbers too large and lengths that are not numbers. Each gets a 4xx or 5xx
JSON answer or a closed connection, within the timeout, and the server keeps serving."""

from __future__ import annotations

import json
import socket
import struct
import time
from pathlib import Path

import pytest

from tango_ci.runtime import Bundle
from tango_ci.runtime.server import Service, serve
from tests.deploy.test_runtime_files import png_header

pytestmark = pytest.mark.slow

TOKEN = "s3cret"
STILL_OPEN = b"<still open>"
LIVE = (
    b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer s3cret\r\n"
    b"Connection: close\r\n\r\n"
)


@pytest.fixture(scope="module")
def service(bundle: Path) -> Service:
    return Service(Bundle(bundle))


@pytest.fixture
def address(service: Service):
    running = serve(service, port=0, token=TOKEN, rate=0, timeout=0.5, max_bytes=2**20)
    yield running.server_address[:2]
    running.shutdown()


def exchange(address, data: bytes, wait: float = 5.0) -> bytes:
    """Send ``data``, then read until the server closes (``STILL_OPEN`` appended if it has
    not within ``wait`` seconds)."""
    with socket.create_connection(address, timeout=wait) as connection:
        connection.sendall(data)
        received = b""
        try:
            while chunk := connection.recv(1 << 16):
                received += chunk
        except TimeoutError:
            received += STILL_OPEN
        return received


def request(method: str, path: str, body: bytes = b"", length: str | None = None, auth=True):
    head = f"{method} {path} HTTP/1.1\r\nHost: test\r\n"
    if auth:
        head += f"Authorization: Bearer {TOKEN}\r\n"
    length = str(len(body)) if length is None else length
    return head.encode() + b"Content-Length: " + length.encode("latin-1") + b"\r\n\r\n" + body


def answers(received: bytes) -> list[tuple[int, dict]]:
    """The (status, JSON body) of each response in ``received``; the last must be whole."""
    assert not received.endswith(STILL_OPEN), received[:300]
    found = []
    while received:
        head, _, rest = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            int(v) for k, _, v in (x.partition(": ") for x in lines) if k == "Content-Length"
        )
        found.append((int(lines[0].split()[1]), json.loads(rest[:length])))
        received = rest[length:]
    return found


def model(service: Service, endpoint: str) -> str:
    return f"/v2/models/{service.name}/{endpoint}"


def test_a_body_sent_with_a_refused_request_is_not_taken_for_the_next_request(address) -> None:
    smuggled = b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\n\r\n"
    for refused in (
        request("POST", "/v2/health/live", smuggled, auth=False),  # 401
        request("POST", "/v2/models/x/infer", smuggled, length="x"),  # 411
        request("GET", "/v2/health/live", smuggled, auth=False),  # 401 on GET, body unread
    ):
        [(status, body)] = answers(exchange(address, refused, wait=2.0))
        assert status in (401, 411) and set(body) == {"error"}


def test_a_stalled_body_is_answered_408_and_the_connection_closed(address) -> None:
    began = time.monotonic()
    partial = request("POST", "/v2/models/x/infer", b"0123456789", length="1000")
    assert answers(exchange(address, partial)) == [
        (408, {"error": "the body did not arrive within 0.5 s"})
    ]
    # a length over max_bytes with no body: drained until the timeout, then 413
    [(status, _)] = answers(exchange(address, request("POST", "/v2", length="999999999999")))
    assert status == 413
    [(status, _)] = answers(exchange(address, request("POST", "/v2", length="9" * 400)))
    assert status == 413
    assert time.monotonic() - began < 4.0
    # silence before the request line: hung up on
    assert exchange(address, b"") == b""


def _hold_and_refused(address, count: int) -> list[socket.socket]:
    """``count`` idle connections held open, after which one more is answered 503."""
    idle = [socket.create_connection(address, timeout=5) for _ in range(count)]
    time.sleep(0.1)
    [(status, body)] = answers(exchange(address, LIVE))
    assert status == 503 and "too many connections" in body["error"]
    return idle


def test_over_the_connection_cap_a_client_gets_503_until_one_is_freed(service: Service) -> None:
    running = serve(service, port=0, timeout=0.5, max_connections=2, max_per_client=0)
    address = running.server_address[:2]
    try:
        idle = _hold_and_refused(address, 2)
        time.sleep(1.0)  # the idle ones time out and free their slots
        assert answers(exchange(address, LIVE)) == [(200, {"live": True})]
        for connection in idle:
            assert connection.recv(100) == b""  # closed by the server
            connection.close()
    finally:
        running.shutdown()


def test_malformed_json_numbers_and_lengths_are_4xx(address, service: Service) -> None:
    infer = model(service, "infer")
    nested = b'{"inputs": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    huge = json.dumps(
        {
            "inputs": [
                {
                    "name": "images",
                    "shape": [1, 3, 32, 32],
                    "datatype": "FP32",
                    "data": [10**400] + [0] * (3 * 32 * 32 - 1),
                }
            ]
        }
    ).encode()
    cases = [
        (request("POST", infer, nested), 400, "the body is JSON nested too deeply"),
        (request("POST", infer, huge), 400, "'data' is not a list of numbers"),
        (
            request("POST", infer, b"{}", length="\xb2"),
            411,
            "Content-Length must be a number of bytes",
        ),
    ]
    for data, status, message in cases:
        [(got, body)] = answers(exchange(address, data))
        assert (got, body["error"]) == (status, message)


def test_an_image_declaring_144_million_pixels_is_413(address, service: Service) -> None:
    bomb = request("POST", model(service, "image"), png_header(12_000, 12_000))
    [(status, body)] = answers(exchange(address, bomb))
    assert status == 413
    assert body["error"] == (
        "the image is too large: 12000x12000 pixels is over the limit of 40000000 pixels"
    )


@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_are_405_json(address, method: str) -> None:
    [(status, body)] = answers(exchange(address, request(method, "/v2/health/live")))
    assert (status, body) == (405, {"error": f"{method} is not allowed; use GET or POST"})


def test_a_client_that_resets_leaves_no_traceback(address, service: Service, capsys) -> None:
    for partial in (
        request("POST", model(service, "infer"), b"0123456789", length="100"),
        b"GET /v2/health/li",
    ):
        connection = socket.create_connection(address)
        connection.sendall(partial)
        time.sleep(0.1)
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()  # a reset, not a close
    time.sleep(0.7)
    assert answers(exchange(address, LIVE)) == [(200, {"live": True})]
    assert "Traceback" not in capsys.readouterr().err


def test_a_request_trickled_a_byte_at_a_time_is_hung_up_on(address) -> None:
    """Each byte comes within the 0.5 s read timeout, but the request must arrive whole
    within four of them: the server hangs up, it does not wait for ever."""
    began = time.monotonic()
    with socket.create_connection(address, timeout=5) as connection:
        connection.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
        closed = False
        for _ in range(40):  # 40 x 0.2 s = 8 s if never hung up on
            time.sleep(0.2)
            try:
                connection.sendall(b"X")
                if connection.recv(1 << 16, socket.MSG_DONTWAIT) == b"":
                    closed = True
                    break
            except BlockingIOError:
                continue
            except OSError:
                closed = True
                break
    assert closed and time.monotonic() - began < 4.0


def _one_answer(connection: socket.socket) -> bytes:
    """Read one whole response (headers, then Content-Length bytes) from ``connection``."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(1 << 16)
        assert chunk, f"hung up on after {received[:200]!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        chunk = connection.recv(1 << 16)
        assert chunk, "hung up on in the middle of an answer"
        body += chunk
    return head + b"\r\n\r\n" + body


def test_idle_keep_alive_time_is_not_taken_from_the_next_request(service: Service) -> None:
    """Read timeout 1 s: a kept-alive connection idle for 0.7 s, then a request that takes
    3.6 s to arrive (under four read timeouts of its own, over four since the previous
    answer) is answered, not hung up on."""
    running = serve(service, port=0, timeout=1.0)
    try:
        with socket.create_connection(running.server_address[:2], timeout=5) as connection:
            connection.sendall(LIVE.replace(b"Connection: close\r\n", b""))
            assert answers(_one_answer(connection)) == [(200, {"live": True})]
            time.sleep(0.7)
            pieces = [LIVE[i : i + 8] for i in range(0, len(LIVE), 8)]
            for piece in pieces[:-1]:
                connection.sendall(piece)
                time.sleep(3.6 / (len(pieces) - 1))
            connection.sendall(pieces[-1])
            received = _one_answer(connection)
    finally:
        running.shutdown()
    assert answers(received) == [(200, {"live": True})]


def test_one_address_cannot_take_every_connection(service: Service) -> None:
    running = serve(service, port=0, timeout=5, max_connections=8, max_per_client=2)
    address = running.server_address[:2]
    try:
        idle = _hold_and_refused(address, 2)
        other = socket.create_connection(address, timeout=5, source_address=("127.0.0.2", 0))
        with other:  # another address still has its share
            other.sendall(LIVE)
            assert other.recv(1 << 16).startswith(b"HTTP/1.1 200")
        idle.pop().close()
        time.sleep(0.2)
        assert answers(exchange(address, LIVE)) == [(200, {"live": True})]
        for connection in idle:
            connection.close()
    finally:
        running.shutdown()
