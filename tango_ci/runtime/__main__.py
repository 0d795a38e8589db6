"""``python -m tango_runtime predict IMAGE_OR_FOLDER ...`` and ``serve`` in a bundle.

JSON lines out, one per image: the file, the model version, and the class with its
probabilities, or the boxes (in the image's own pixels). A detection bundle reports boxes at
the deployment thresholds of its postprocess.json; ``--conf``, ``--iou`` and ``--max-det``
override them for one call (mAP, for one, is measured at a low ``conf``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from .bundle import Bundle, BundleError
from .images import ImageError, read_rgb

MAX_TOKEN_BYTES = 4096
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def _images(inputs: list[Path]) -> list[Path]:
    found: list[Path] = []
    for item in inputs:
        if item.is_dir():
            # regular files only: a FIFO named x.png would block the read for ever
            found += sorted(
                p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
        else:
            found.append(item)
    return found


THRESHOLD_OPTIONS = {"conf": "--conf", "iou": "--iou", "max_det": "--max-det"}


def _overridden(bundle: Bundle, args: argparse.Namespace) -> bool:
    """Apply the threshold options given to a detection bundle; False (and a message) where
    they are given to a classification bundle, which has no thresholds."""
    given = {k: getattr(args, k) for k in THRESHOLD_OPTIONS if getattr(args, k) is not None}
    if not given:
        return True
    if bundle.task != "detection":
        options = ", ".join(THRESHOLD_OPTIONS[k] for k in given)
        print(f"error: {options}: a {bundle.task} bundle has no thresholds", file=sys.stderr)
        return False
    bundle.thresholds = dataclasses.replace(bundle.thresholds, **given)
    return True


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not 0 or a positive integer")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < 86400:
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds above 0")
    return value


def predict(args: argparse.Namespace) -> int:
    """JSON lines for the images that can be read; one ``error: FILE: reason`` line on stderr
    for each that cannot, and exit status 1 at the end if any could not."""
    bundle = Bundle(args.bundle, threads=args.threads)
    if not _overridden(bundle, args):
        return 2
    failed = 0
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115
    try:
        paths = _images(args.inputs)
        for start in range(0, len(paths), args.batch):
            read: list[tuple[Path, np.ndarray]] = []
            for path in paths[start : start + args.batch]:
                try:
                    read.append((path, read_rgb(str(path))))
                except ImageError as exc:
                    print(f"error: {path}: {exc}", file=sys.stderr, flush=True)
                    failed += 1
            if not read:
                continue
            answers = bundle.answer([image for _, image in read])
            for (path, _), answer in zip(read, answers, strict=True):
                record = {"image": str(path), "version": bundle.version, **answer}
                out.write(json.dumps(record) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 1 if failed else 0


def _token(path: Path | None, environment: str | None) -> tuple[str | None, str | None]:
    """The bearer token (from the file, else the environment) or why it cannot be one: an
    empty one would switch authentication off, and one that is not visible ASCII could never
    match (HTTP headers arrive as Latin-1)."""
    source, token = "TANGO_SERVE_TOKEN", environment
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_TOKEN_BYTES + 1)
        except OSError as exc:
            return None, f"{path}: cannot read the token file ({exc.strerror or exc})"
        if len(raw) > MAX_TOKEN_BYTES:
            return None, f"{path}: the token file is over {MAX_TOKEN_BYTES} bytes"
        token = raw.decode("utf-8", "replace").strip()
        if not token:
            return None, f"{path}: the token file is empty"
    if token is not None and not all("!" <= c <= "~" for c in token):
        return None, f"{source}: the token must be visible ASCII without spaces"
    return token, None


def serve_command(args: argparse.Namespace) -> int:
    import os
    import signal
    import threading

    from .logs import PredictionLog
    from .server import Service, serve

    token, problem = _token(args.token_file, os.environ.get("TANGO_SERVE_TOKEN") or None)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    champion = Bundle(args.bundle, threads=args.threads)
    challenger = Bundle(args.challenger, threads=args.threads) if args.challenger else None
    log = PredictionLog(args.log) if args.log else None
    service = Service(
        champion, challenger, args.mode, args.weight, log, keep_images=args.keep_images
    )
    server = serve(
        service,
        args.host,
        args.port,
        token,
        args.max_bytes,
        args.rate,
        timeout=args.timeout,
        max_connections=args.max_connections,
        max_per_client=args.max_per_client,
    )
    host, port = str(server.server_address[0]), int(server.server_address[1])
    print(
        f"serving {service.name} ({champion.version}"
        + (f", {args.mode} with {challenger.version}" if challenger else "")
        + f") on http://{host}:{port}/v2",
        file=sys.stderr,
        flush=True,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    if log is not None:
        log.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tango_runtime", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    default_bundle = Path(__file__).resolve().parent.parent
    run = commands.add_parser("predict", help="images or folders in, JSON lines out")
    run.add_argument("inputs", nargs="+", type=Path, help="image files or folders of them")
    run.add_argument("--bundle", type=Path, default=default_bundle, help="bundle folder")
    run.add_argument("--out", type=Path, help="write JSON lines here (default: stdout)")
    run.add_argument("--batch", type=_positive, default=16, help="images per network call")
    run.add_argument("--threads", type=int, default=None, help="intra-op threads")
    for name, option, kind, what in (
        ("conf", "--conf", _fraction, "smallest score of a box reported"),
        ("iou", "--iou", _fraction, "NMS IoU threshold"),
        ("max_det", "--max-det", _positive, "most boxes reported per image"),
    ):
        run.add_argument(
            option, dest=name, type=kind, help=f"detection: {what} (default: postprocess.json's)"
        )
    run.set_defaults(handler=predict)
    up = commands.add_parser("serve", help="the Open Inference Protocol (v2) over HTTP")
    up.add_argument("--bundle", type=Path, default=default_bundle, help="bundle folder")
    up.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    up.add_argument("--port", type=int, default=8080, help="port (0: any free one)")
    up.add_argument(
        "--token-file", type=Path, help="require this bearer token (or set TANGO_SERVE_TOKEN)"
    )
    up.add_argument("--max-bytes", type=int, default=8 * 2**20, help="largest request body")
    up.add_argument(
        "--rate", type=float, default=100.0, help="requests a second per client (0: no limit)"
    )
    up.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        help="drop a client silent this long (s); a request must arrive whole within 4x this",
    )
    up.add_argument(
        "--max-connections", type=_positive, default=64, help="open connections (over: 503)"
    )
    up.add_argument(
        "--max-per-client",
        type=_count,
        default=None,
        help="open connections from one address (over: 503); default a quarter of "
        "--max-connections, 0 for none (behind a proxy every client has its address)",
    )
    up.add_argument("--log", type=Path, help="prediction log (SQLite, WAL)")
    up.add_argument("--keep-images", type=Path, help="keep image requests here, for labelling")
    up.add_argument("--challenger", type=Path, help="a second bundle: shadow or canary")
    up.add_argument("--mode", choices=("shadow", "canary"), default="shadow")
    up.add_argument("--weight", type=float, default=0.1, help="canary: the challenger's share")
    up.add_argument("--threads", type=int, default=None, help="intra-op threads")
    up.set_defaults(handler=serve_command)
    args = parser.parse_args(argv)
    # read_rgb refuses images over its limit (MAX_FILE_PIXELS for a file, MAX_PIXELS for a
    # request) with one line; Pillow's own warning for those over 89 million pixels would be a
    # second one
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    try:
        return args.handler(args)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(
            f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
