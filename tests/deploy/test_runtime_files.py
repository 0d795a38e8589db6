"""Hostile files given to a bundle's ``predict`` and ``serve`` commands: a damaged bundle (its
hashes made to match, so that only the content is wrong), a bad image among good ones, an
image that declares too many pixels, an empty token file. Each is one ``error:`` line and
exit status 1, never a traceback; the good images are still answered."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tango_ci.runtime import Bundle, BundleError
from tango_ci.runtime.__main__ import main

pytestmark = pytest.mark.slow


def rebuilt(bundle: Path, folder: Path, files: dict[str, bytes], **manifest_changes) -> Path:
    """A copy of ``bundle`` with ``files`` replaced and their hashes updated in the manifest
    (so the hash check passes and the content is what is tested), and the manifest changed."""
    shutil.copytree(bundle, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    for relative, content in files.items():
        (folder / relative).write_bytes(content)
        manifest["files"][relative] = hashlib.sha256(content).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest | manifest_changes))
    return folder


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` one-bit pixels and holds none (a
    decompression bomb stops here too: its few KB of IDAT are never reached)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _picture(path: Path, value: int) -> Path:
    Image.fromarray(np.full((20, 24, 3), value, np.uint8)).save(path)
    return path


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


DETECTION = json.dumps({"task": "detection", "thresholds": {"conf": 0.25}}).encode()


@pytest.mark.parametrize(
    ("files", "changes", "message"),
    [
        ({"model/model.onnx": b"not an onnx model"}, {}, "model/model.onnx: the engine cannot"),
        ({"labels.json": b"5"}, {}, "labels.json: the file must be a list of strings"),
        (
            {"preprocess.json": b'{"kind": "resize", "size": 48, "mean": 0.5, "std": 0.5}'},
            {},
            "preprocess.json: 'size' 48 makes (N, 3, 48, 48) inputs, the model takes",
        ),
        (
            {"postprocess.json": DETECTION.replace(b'{"conf": 0.25}', b"[0.25]")},
            {},
            "postprocess.json: 'thresholds' must be an object",
        ),
        (
            {"postprocess.json": DETECTION.replace(b"0.25", b"null")},
            {},
            "postprocess.json: 'thresholds': 'conf' must be a number 0-1",
        ),
        ({}, {"model": ["model/model.onnx"]}, "manifest.json: 'model' must name one of"),
        ({}, {"model": {"model/model.onnx": 1}}, "manifest.json: 'model' must name one of"),
        ({}, {"batch": [1]}, "manifest.json: 'batch' must be an integer 1-65536"),
        ({}, {"providers": 3}, "manifest.json: 'providers' must be a list of strings"),
        ({}, {"session": ["all"]}, "manifest.json: 'session' must be an object"),
        ({}, {"session": {"spinning": "yes"}}, "manifest.json: 'session.spinning' must be"),
    ],
)
def test_a_damaged_bundle_is_one_error_line_naming_the_file_and_field(
    bundle: Path, tmp_path: Path, capsys, files: dict, changes: dict, message: str
) -> None:
    damaged = rebuilt(bundle, tmp_path / "bundle", files, **changes)
    with pytest.raises(BundleError) as raised:
        Bundle(damaged)
    assert str(raised.value).startswith(message)
    image = _picture(tmp_path / "a.png", 90)
    assert main(["predict", "--bundle", str(damaged), str(image)]) == 1
    assert _error_line(capsys).startswith(f"error: {message}")


def test_a_manifest_nested_too_deeply_is_refused(bundle: Path, tmp_path: Path) -> None:
    damaged = rebuilt(bundle, tmp_path / "bundle", {})
    (damaged / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BundleError, match=r"^manifest.json: not valid JSON \(nested too deeply"):
        Bundle(damaged)


def test_predict_answers_every_good_image_and_names_each_bad_one(
    bundle: Path, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    _picture(folder / "a.png", 30)
    whole = _picture(folder / "c.png", 200).read_bytes()
    (folder / "b.png").write_bytes(whole[: len(whole) // 2])  # truncated
    (folder / "d.png").write_bytes(png_header(12_000, 12_000))  # 144 million pixels in 57 bytes
    (folder / "e.png").write_bytes(png_header(60_000, 60_000))  # over Pillow's own bomb limit
    _picture(folder / "f.png", 120)
    assert main(["predict", "--bundle", str(bundle), "--batch", "2", str(folder)]) == 1
    out, err = capsys.readouterr()
    answered = [json.loads(line)["image"] for line in out.splitlines()]
    assert answered == [str(folder / name) for name in ("a.png", "c.png", "f.png")]
    errors = err.splitlines()
    assert "Traceback" not in err and len(errors) == 3, err
    assert errors[0].startswith(f"error: {folder / 'b.png'}: not an image Pillow can read")
    assert errors[1] == (
        f"error: {folder / 'd.png'}: 12000x12000 pixels is over the limit of 120000000 pixels"
    )
    assert errors[2].startswith(f"error: {folder / 'e.png'}: Image size (3600000000 pixels)")


@pytest.mark.parametrize("batch", ["0", "-1", "two"])
def test_predict_refuses_a_batch_that_is_not_a_positive_integer(
    bundle: Path, tmp_path: Path, capsys, batch: str
) -> None:
    image = _picture(tmp_path / "a.png", 90)
    with pytest.raises(SystemExit) as exited:
        main(["predict", "--bundle", str(bundle), "--batch", batch, str(image)])
    assert exited.value.code == 2
    assert "--batch" in capsys.readouterr().err


def test_serve_refuses_an_empty_token_file(tmp_path: Path, capsys, monkeypatch) -> None:
    """An empty token would switch authentication off, over TANGO_SERVE_TOKEN too."""
    monkeypatch.setenv("TANGO_SERVE_TOKEN", "from-the-environment")
    empty = tmp_path / "token"
    empty.write_text(" \n")
    argv = ["serve", "--bundle", str(tmp_path / "no-bundle"), "--token-file", str(empty)]
    assert main([*argv, "--port", "0"]) == 1
    assert _error_line(capsys) == f"error: {empty}: the token file is empty"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("jeton-é\n", "the token must be visible ASCII without spaces"),
        ("two words", "the token must be visible ASCII without spaces"),
        ("x" * 5000, "the token file is over 4096 bytes"),
    ],
)
def test_serve_refuses_a_token_no_client_could_send(
    tmp_path: Path, capsys, content: str, why: str
) -> None:
    """HTTP headers arrive as Latin-1: a token with other characters could never match."""
    path = tmp_path / "token"
    path.write_text(content, encoding="utf-8")
    argv = ["serve", "--bundle", str(tmp_path / "no-bundle"), "--token-file", str(path)]
    assert main([*argv, "--port", "0"]) == 1
    assert _error_line(capsys) == f"error: {path}: {why}"


def test_serve_names_a_token_file_it_cannot_read_and_a_bad_environment_token(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    missing = tmp_path / "missing"
    argv = ["serve", "--bundle", str(tmp_path / "no-bundle"), "--port", "0"]
    assert main([*argv, "--token-file", str(missing)]) == 1
    assert _error_line(capsys).startswith(f"error: {missing}: cannot read the token file (")
    monkeypatch.setenv("TANGO_SERVE_TOKEN", "naïve")
    assert main(argv) == 1
    assert _error_line(capsys) == (
        "error: TANGO_SERVE_TOKEN: the token must be visible ASCII without spaces"
    )


def test_the_rate_limiter_forgets_refilled_clients_but_not_a_limited_one() -> None:
    """A stream of new addresses cannot grow the table without bound, and forgetting never
    lets a client that is being limited through."""
    from tango_ci.runtime.handler import RateLimiter

    now = [0.0]
    limiter = RateLimiter(rate=10, max_clients=3, clock=lambda: now[0])
    assert all(limiter.allow(client) for client in ("a", "b", "c"))
    assert [limiter.allow("d") for _ in range(11)] == [True] * 10 + [False]
    now[0] = 0.15  # a, b and c refill (0.1 s); d has 1.5 requests back
    assert limiter.allow("e") and len(limiter) == 2  # d and e
    assert [limiter.allow("d") for _ in range(3)] == [True, False, False]
