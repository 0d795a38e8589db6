"""The deployment path under a probe: images as users send them (32-bit integer TIFFs refused,
float images as 0..1), and ``serve`` on loopback with requests a proxy and a server could
read differently (a body framed by Transfer-Encoding as well as Content-Length, two
Content-Lengths) or tensors whose fields are of the wrong kind. The bundle is made by hand
(a three-output average-pooling network), so each test takes milliseconds."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tango_ci.runtime import Bundle
from tango_ci.runtime.images import FormatRefused, read_rgb
from tango_ci.runtime.server import Service, serve
from tests.deploy.tiny_bundle import SIZE, tiny_bundle

GRADIENT = np.arange(256, dtype=np.uint8).reshape(16, 16)


def _saved(image: Image.Image, kind: str = "TIFF") -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, kind)
    buffer.seek(0)
    return buffer


# ---------------------------------------------------------------------------- images
def test_a_32_bit_integer_tiff_is_refused_not_read_black_or_white() -> None:
    """A TIFF saved from a numpy int32 array of 0..255 read black (its top 16-bit byte); read
    by its own range, one pixel of 256 turned it black again. No fixed scale fits such files,
    so they are refused with the way out (tests/deploy/test_runtime_images.py); in memory,
    mode "I" holds 16-bit values, and a signed one below 0 is black."""
    for values in (GRADIENT.astype(np.int32), GRADIENT.astype(np.int16) - 100):
        as_int32 = _saved(Image.fromarray(values))
        assert Image.open(as_int32).mode == "I"
        with pytest.raises(FormatRefused, match=r"^a TIFF of 32-bit integers"):
            read_rgb(as_int32)
    signed = Image.fromarray((GRADIENT.astype(np.int32) - 100) * 257)
    np.testing.assert_array_equal(
        read_rgb(signed)[:, :, 0], np.clip(GRADIENT.astype(int) - 100, 0, 255)
    )


def test_one_infinite_pixel_does_not_turn_a_0_1_float_image_black() -> None:
    values = GRADIENT.astype(np.float32) / 255
    values[0, 0], values[0, 1], values[0, 2] = np.inf, -np.inf, np.nan
    read = read_rgb(_saved(Image.fromarray(values)))[:, :, 0]
    assert read[0, :3].tolist() == [255, 0, 0]
    np.testing.assert_array_equal(read.ravel()[3:], GRADIENT.ravel()[3:])


# ---------------------------------------------------------------------------- serve
@pytest.fixture(scope="module")
def address(tmp_path_factory):
    service = Service(Bundle(tiny_bundle(tmp_path_factory.mktemp("bundle") / "b")))
    running = serve(service, port=0, rate=0, timeout=0.5)
    yield running.server_address[:2]
    running.shutdown()


def _exchange(address, data: bytes) -> bytes:
    """``data`` sent, and all the server answers until it closes."""
    with socket.create_connection(address, timeout=5) as connection:
        connection.sendall(data)
        received = b""
        while chunk := connection.recv(1 << 16):
            received += chunk
        return received


def _statuses(received: bytes) -> list[int]:
    return [int(line.split()[1]) for line in received.split(b"\r\n") if line[:7] == b"HTTP/1."]


def _infer(tensor: dict) -> bytes:
    return json.dumps({"inputs": [tensor]}).encode()


GOOD = _infer({"datatype": "FP32", "shape": [1, 3, SIZE, SIZE], "data": [0.5] * 3 * SIZE * SIZE})
SMUGGLED = b"GET /v2/models/smuggled HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def _post(headers: str, body: bytes) -> bytes:
    return f"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode() + body


def test_the_tiny_bundle_answers(address) -> None:
    assert _statuses(
        _exchange(address, _post(f"Content-Length: {len(GOOD)}\r\nConnection: close\r\n", GOOD))
    ) == [200]


@pytest.mark.parametrize(
    "headers",
    [
        # a proxy that reads the chunks sees one request, this server two
        f"Transfer-Encoding: chunked\r\nContent-Length: {len(GOOD)}\r\n",
        # a proxy that takes the last length sees one request, this server two
        f"Content-Length: {len(GOOD)}\r\nContent-Length: {len(GOOD) + len(SMUGGLED)}\r\n",
    ],
    ids=["transfer-encoding", "two-lengths"],
)
def test_a_body_framed_two_ways_is_400_and_nothing_after_it_is_served(address, headers) -> None:
    received = _exchange(address, _post(headers, GOOD + SMUGGLED))
    assert _statuses(received) == [400], received[:400]
    assert b"smuggled" not in received


def test_chunked_transfer_encoding_alone_is_refused_in_one_json_line(address) -> None:
    received = _exchange(address, _post("Transfer-Encoding: chunked\r\n", b"2\r\n{}\r\n0\r\n\r\n"))
    assert _statuses(received) == [411]
    assert "Content-Length" in json.loads(received.partition(b"\r\n\r\n")[2])["error"]


@pytest.mark.parametrize("datatype", [["FP32"], {"FP32": 1}])
def test_a_datatype_that_is_not_a_string_is_400_not_500(address, datatype) -> None:
    body = _infer({"datatype": datatype, "shape": [1, 3, SIZE, SIZE], "data": [0]})
    received = _exchange(address, _post(f"Content-Length: {len(body)}\r\n", body))
    assert _statuses(received) == [400], received[:400]
    assert "datatype" in json.loads(received.partition(b"\r\n\r\n")[2])["error"]


@pytest.mark.parametrize(
    "framing",
    [
        f"Content-Length: {len(SMUGGLED)}\r\n\r\n".encode() + SMUGGLED,
        f"Transfer-Encoding: chunked\r\n\r\n{len(SMUGGLED):x}\r\n".encode()
        + SMUGGLED
        + b"\r\n0\r\n\r\n",
    ],
    ids=["content-length", "chunked"],
)
def test_a_get_with_a_body_is_400_and_its_body_is_never_served(address, framing) -> None:
    received = _exchange(address, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n" + framing)
    assert _statuses(received) == [400], received[:400]
    assert b"smuggled" not in received and b"Bad request syntax" not in received


def test_a_get_with_an_empty_body_is_answered(address) -> None:
    request = (
        b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    assert _statuses(_exchange(address, request)) == [200]


# ---------------------------------------------------------------------------- bundles
@pytest.mark.parametrize("alias", ["./model/model.onnx", "model//model.onnx", "model/./model.onnx"])
def test_a_manifest_listing_one_file_under_two_names_is_one_bundle_error(tmp_path, alias) -> None:
    """Both names were copied to one private path: a FileExistsError naming a temporary file."""
    from tango_ci.runtime import BundleError

    folder = tiny_bundle(tmp_path / "b")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][alias] = manifest["files"]["model/model.onnx"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=f"^manifest.json: '{alias}' is not a path inside"):
        Bundle(folder)


@pytest.mark.parametrize(
    "data",
    [["0.5"] * 3 * SIZE * SIZE, [True] * 3 * SIZE * SIZE, [0.5] * (3 * SIZE * SIZE - 1) + ["1"]],
    ids=["strings", "booleans", "one-string"],
)
def test_data_that_is_not_numbers_is_400(address, data) -> None:
    """numpy turned "0.5" into 0.5 and true into 1.0: such a tensor was answered."""
    body = _infer({"datatype": "FP32", "shape": [1, 3, SIZE, SIZE], "data": data})
    received = _exchange(address, _post(f"Content-Length: {len(body)}\r\n", body))
    assert _statuses(received) == [400], received[:400]
    assert json.loads(received.partition(b"\r\n\r\n")[2]) == {
        "error": "'data' is not a list of numbers"
    }


# ---------------------------------------------------------------------------- memory
def test_a_pixel_budget_lets_in_what_fits_and_holds_the_rest() -> None:
    import threading

    from tango_ci.runtime.server import PixelBudget

    budget, entered = PixelBudget(100), threading.Event()

    def late() -> None:
        with budget.hold(60):
            entered.set()

    with budget.hold(60), budget.hold(40):  # together they fit
        waiting = threading.Thread(target=late)
        waiting.start()
        assert not entered.wait(0.2) and budget.used == 100
    assert entered.wait(5)
    waiting.join()
    with budget.hold(10**9):  # over the whole budget: alone
        assert budget.used == 100
    assert budget.used == 0


def test_the_pixel_budget_serves_in_order_and_gives_up_after_its_wait() -> None:
    """A large image waiting is not passed by smaller ones that came after it (a stream of
    them would starve it), and a request that waited ``wait_s`` is a 503, not a hung thread."""
    import threading

    from tango_ci.runtime.server import PixelBudget, RequestError

    budget, order = PixelBudget(100, wait_s=5), []

    def ask(name: str, pixels: int) -> None:
        with budget.hold(pixels):
            order.append(name)

    with budget.hold(50):
        large = threading.Thread(target=ask, args=("large", 100))
        large.start()
        while not budget._queue:  # the large one is waiting
            pass
        small = threading.Thread(target=ask, args=("small", 10))  # fits now, but came later
        small.start()
        assert not order and small.is_alive()
    large.join(5)
    small.join(5)
    assert order == ["large", "small"]
    impatient = PixelBudget(100, wait_s=0.2)
    with impatient.hold(100), pytest.raises(RequestError) as caught, impatient.hold(1):
        pass
    assert caught.value.status == 503 and not impatient._queue
    with impatient.hold(100):  # nothing left behind by the one that gave up
        assert impatient.used == 100


def test_a_json_body_is_parsed_inside_the_pixel_budget(tmp_path) -> None:
    """/infer bodies were parsed outside any budget: a JSON body now holds two pixels a byte
    while it is parsed and answered, so one arriving while the budget is spent waits (503)."""
    from tango_ci.runtime.server import PixelBudget, RequestError

    service = Service(Bundle(tiny_bundle(tmp_path / "b")))
    service.pixels = PixelBudget(2 * len(GOOD), wait_s=0.2)
    assert service.infer_json(GOOD)["outputs"][0]["shape"] == [1, 3]
    with service.pixels.hold(1), pytest.raises(RequestError) as caught:
        service.infer_json(GOOD)
    assert caught.value.status == 503


SERVE_AND_MEASURE = """
import sys
from tango_ci.runtime import Bundle
from tango_ci.runtime.server import Service, serve
running = serve(Service(Bundle(sys.argv[1]), pixel_budget=40_000_000), port=0, rate=0)
print(running.server_address[1], flush=True)
sys.stdin.read()
status = open("/proc/self/status").read().split("VmHWM:")[1]
print(int(status.split()[0]) // 1024, flush=True)
"""


def _peak_mb_while(folder: Path, send, clients: int) -> int:
    """Serve ``folder`` in a child process, call ``send(model_url)`` from ``clients`` threads
    at once, and return the child's peak memory in MB."""
    import subprocess
    import sys
    import threading

    child = subprocess.Popen(
        [sys.executable, "-c", SERVE_AND_MEASURE, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    url = f"http://127.0.0.1:{child.stdout.readline().strip()}/v2/models/tiny"
    threads = [threading.Thread(target=send, args=(url,)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    child.stdin.close()
    peak_mb = int(child.stdout.readline())
    child.wait(10)
    return peak_mb


@pytest.mark.slow
def test_concurrent_requests_of_40_million_pixels_are_decoded_one_at_a_time(tmp_path) -> None:
    """A 130 KB PNG of 8000 x 5000 pixels took ~700 MB to answer, and five sent at once 3.0 GB;
    one at a time, the server stays under 2 GB (allocators keep some of what was freed, each
    thread's arena its own: 0.9 GB measured). The peak is the server's own (VmHWM): the
    ru_maxrss read before carried the pytest worker's peak over (2.1-2.3 GB in CI runs)."""
    import urllib.request

    big = io.BytesIO()
    Image.new("RGB", (8000, 5000), (10, 200, 30)).save(big, "PNG")
    statuses: list[int] = []

    def post(url: str) -> None:
        request = urllib.request.Request(f"{url}/image", big.getvalue(), method="POST")
        with urllib.request.urlopen(request, timeout=120) as answer:
            statuses.append(answer.status)

    peak_mb = _peak_mb_while(tiny_bundle(tmp_path / "b"), post, clients=5)
    assert statuses == [200] * 5
    assert peak_mb < 2000, f"{peak_mb} MB"


@pytest.mark.parametrize(
    ("name", "shown"),
    [("x" * 5000, "x" * 80), ("a\x00b", "a\\x00b"), ("a\nb", "a\\nb")],
    ids=["too-long", "nul", "newline"],
)
def test_a_listed_name_no_file_can_have_is_one_short_bundle_error(tmp_path, name, shown) -> None:
    """A 5,000-character name was an OSError quoting the whole path, a NUL a ValueError."""
    from tango_ci.runtime import BundleError

    folder = tiny_bundle(tmp_path / "b")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError) as raised:
        Bundle(folder)
    assert str(raised.value) == f"{shown}: missing or not a regular file"


def test_predict_on_a_folder_skips_what_is_not_a_regular_file(tmp_path) -> None:
    """A FIFO named x.png in the folder blocked predict for ever on opening it."""
    import os
    import subprocess
    import sys

    folder = tiny_bundle(tmp_path / "b")
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (12, 9), (200, 10, 10)).save(images / "red.png")
    os.mkfifo(images / "pipe.png")
    (images / "folder.png").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "tango_ci.runtime", "predict", str(images), "--bundle", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["image"] for line in done.stdout.splitlines()] == [
        str(images / "red.png")
    ]


@pytest.mark.slow
def test_a_body_of_empty_lists_is_refused_before_it_is_parsed(tmp_path) -> None:
    """An 8 MiB body of "[]," took 280 MB and 2 s to parse and answer 400; three sent at once
    took the server to 548 MB. Lists are counted first: more than a batch nested by its shape
    is a 400 unparsed (87 MB), while a tensor nested by its shape is answered."""
    import urllib.error
    import urllib.request

    tensor = {"datatype": "FP32", "shape": [1, 3, SIZE, SIZE], "data": [[]] * 2_700_000}
    body = json.dumps({"inputs": [tensor]}, separators=(",", ":")).encode()  # 7.7 MiB
    nested = _infer({"datatype": "FP32", "shape": [1, 3, SIZE, SIZE],
                     "data": [[[[0.5] * SIZE] * SIZE] * 3]})  # fmt: skip
    answers: list[tuple[int, str]] = []

    def post(url: str) -> None:
        for data in (nested, body):
            request = urllib.request.Request(f"{url}/infer", data, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=120) as answer:
                    answers.append((answer.status, ""))
            except urllib.error.HTTPError as refused:
                answers.append((refused.code, json.loads(refused.read())["error"]))

    peak_mb = _peak_mb_while(tiny_bundle(tmp_path / "b"), post, clients=3)
    message = f"the body holds more lists than an [N, 3, {SIZE}, {SIZE}] tensor"
    assert sorted(answers) == [(200, "")] * 3 + [(400, message)] * 3
    assert peak_mb < 300, f"{peak_mb} MB"
