"""serve: the Open Inference Protocol over HTTP, hostile requests answered with 4xx while it
keeps serving, every acknowledged request logged durably, shadow and canary routing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tango_ci.runtime import Bundle
from tango_ci.runtime.logs import PredictionLog, read_records
from tango_ci.runtime.server import Service, serve

pytestmark = pytest.mark.slow


def _call(url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _tensor(bundle: Bundle, count: int = 1, **changes) -> bytes:
    size = bundle.preprocess["size"]
    tensor = {
        "name": "images",
        "shape": [count, 3, size, size],
        "datatype": "FP32",
        "data": np.random.default_rng(0).random(count * 3 * size * size).round(3).tolist(),
    } | changes
    return json.dumps({"inputs": [tensor]}).encode()


def _copy_as(bundle: Path, folder: Path, version: str) -> Path:
    shutil.copytree(bundle, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = version
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def server(bundle: Path, tmp_path: Path):
    champion = Bundle(bundle)
    service = Service(champion, log=PredictionLog(tmp_path / "log.sqlite"))
    running = serve(service, port=0, token="s3cret", max_bytes=2**20, rate=1000)
    host, port = running.server_address[:2]
    yield f"http://{host}:{port}/v2", champion, service
    running.shutdown()


def test_hostile_requests_get_a_4xx_json_error_and_the_server_keeps_serving(server) -> None:
    url, champion, service = server
    auth = {"Authorization": "Bearer s3cret"}
    model = f"{url}/models/{service.name}"
    assert _call(f"{url}/health/ready")[0] == 401  # no token
    assert _call(f"{url}/health/ready", headers={"Authorization": "Bearer wrong"})[0] == 401
    cases = {
        "not JSON": (b"{nope", 400),
        "wrong shape": (_tensor(champion, shape=[1, 3, 7, 7]), 400),
        "wrong dtype": (_tensor(champion, datatype="BYTES"), 400),
        "too few values": (_tensor(champion, data=[1.0, 2.0]), 400),
        "NaN": (_tensor(champion, data=["NaN"] * 3), 400),
        "not a list": (json.dumps({"inputs": "images"}).encode(), 400),
    }
    for name, (body, status) in cases.items():
        code, answer = _call(f"{model}/infer", body, auth)
        assert (code, set(answer)) == (status, {"error"}), name
    big = b"x" * (50 * 2**20)
    code, answer = _call(f"{model}/infer", big, auth)
    assert code == 413 and "over" in answer["error"]
    assert _call(f"{url}/models/unknown/infer", _tensor(champion), auth)[0] == 404
    assert _call(f"{model}/image", b"\x89PNG not really", auth)[0] == 400
    # still serving, and answering right
    assert _call(f"{url}/health/live", headers=auth) == (200, {"live": True})
    code, answer = _call(f"{model}/infer", _tensor(champion, 2), auth)
    assert code == 200 and answer["outputs"][0]["shape"][0] == 2
    assert answer["model_version"] == champion.version
    metadata = _call(model, headers=auth)[1]
    size = champion.preprocess["size"]
    assert metadata["inputs"][0]["shape"] == [-1, 3, size, size]


def test_an_image_posted_as_a_form_file_is_answered_as_the_raw_image(server) -> None:
    url, _, service = server
    auth = {"Authorization": "Bearer s3cret"}
    pixels = np.random.default_rng(1).integers(0, 255, (20, 20, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    image = buffer.getvalue()
    raw = _call(f"{url}/models/{service.name}/image", image, auth)
    boundary = "----form7MA4YWxkTrZu0gW"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="upload"; filename="x.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    form = {**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    posted = _call(f"{url}/models/{service.name}/image", body, form)
    assert raw[0] == posted[0] == 200
    assert {k: v for k, v in posted[1].items() if k != "id"} == {
        k: v for k, v in raw[1].items() if k != "id"
    }
    hashes = [r["input_hash"] for r in read_records(service.log.path)][-2:]
    assert hashes == [hashlib.sha256(image).hexdigest()] * 2  # the image's, not the form's
    no_file = body.replace(b'name="upload"; filename="x.png"', b'name="other"')
    code, answer = _call(f"{url}/models/{service.name}/image", no_file, form)
    assert code == 400 and "no part of the multipart body is a file" in answer["error"]


def test_the_rate_limit_answers_429(bundle: Path) -> None:
    running = serve(Service(Bundle(bundle)), port=0, rate=5)
    host, port = running.server_address[:2]
    try:
        codes = Counter(_call(f"http://{host}:{port}/v2/health/live")[0] for _ in range(30))
    finally:
        running.shutdown()
    assert codes[200] >= 5 and codes[429] >= 10


def test_shadow_logs_both_versions_and_the_champion_answers(bundle: Path, tmp_path: Path) -> None:
    champion = Bundle(bundle)
    challenger = Bundle(_copy_as(bundle, tmp_path / "challenger", "v2-challenger"))
    log = PredictionLog(tmp_path / "log.sqlite")
    running = serve(Service(champion, challenger, "shadow", log=log), port=0)
    host, port = running.server_address[:2]
    try:
        for _ in range(5):
            code, answer = _call(
                f"http://{host}:{port}/v2/models/{champion.manifest['target']}/infer",
                _tensor(champion),
            )
            assert code == 200 and answer["model_version"] == champion.version
    finally:
        running.shutdown()
    records = read_records(tmp_path / "log.sqlite")
    by_request: dict[str, set] = {}
    for record in records:
        by_request.setdefault(record["request"], set()).add(
            (record["role"], record["model_version"])
        )
    assert len(by_request) == 5
    assert all(
        roles == {("champion", champion.version), ("challenger", "v2-challenger")}
        for roles in by_request.values()
    )


def test_canary_splits_requests_by_weight(bundle: Path, tmp_path: Path) -> None:
    champion = Bundle(bundle)
    challenger = Bundle(_copy_as(bundle, tmp_path / "challenger", "v2-canary"))
    running = serve(Service(champion, challenger, "canary", weight=0.3), port=0, rate=0)
    host, port = running.server_address[:2]
    url = f"http://{host}:{port}/v2/models/{champion.manifest['target']}/infer"
    body = _tensor(champion)
    try:
        versions = Counter(_call(url, body)[1]["model_version"] for _ in range(1000))
    finally:
        running.shutdown()
    assert set(versions) == {champion.version, "v2-canary"}
    assert abs(versions["v2-canary"] / 1000 - 0.3) <= 0.05


def test_sigkill_loses_no_acknowledged_log_record(bundle: Path, tmp_path: Path) -> None:
    log = tmp_path / "log.sqlite"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tango_ci.runtime",
            "serve",
            "--bundle",
            str(bundle),
            "--port",
            "0",
            "--log",
            str(log),
            "--rate",
            "0",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stderr.readline()
        found = re.search(r"http://([\d.]+):(\d+)/v2", line)
        assert found, line
        url = f"http://{found[1]}:{found[2]}/v2/models/{Bundle(bundle).manifest['target']}/image"
        from PIL import Image

        picture = tmp_path / "x.png"
        Image.fromarray(np.full((40, 30, 3), 90, np.uint8)).save(picture)
        acknowledged = 0
        for _ in range(40):
            code, _ = _call(url, picture.read_bytes())
            assert code == 200
            acknowledged += 1
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert len(read_records(log)) == acknowledged == 40
