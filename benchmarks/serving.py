"""serve against the bundle runtime called directly: loopback load, bounded in time and requests.

A bundle (``--bundle DIR``, else one built from the example project's latest run) answers
the same image (1) directly, ``bundle.answer([image])`` in this process, and (2) through
``serve`` on 127.0.0.1 with N concurrent clients posting it to the image endpoint and, for
tensors, to ``infer``. Per request latency p50/p99 and throughput; the overhead ratio is
serve's p50 over the direct call's p50 at one client. Prediction logging is on (as deployed).

    python benchmarks/serving.py [--bundle DIR] [--clients 1,4] [--requests 400] [--seconds 20]

Writes benchmarks/results/serving.json and .md.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT

from tango_ci.bench.latency import host_facts
from tango_ci.runtime import Bundle
from tango_ci.runtime.logs import PredictionLog
from tango_ci.runtime.server import Service, serve


def stats(samples_ms: list[float], seconds: float) -> dict:
    values = np.asarray(samples_ms)
    return {
        "requests": len(values),
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
        "throughput_per_s": len(values) / seconds if seconds else 0.0,
    }


def direct(bundle: Bundle, image: np.ndarray, requests: int, seconds: float) -> dict:
    for _ in range(10):
        bundle.answer([image])
    samples, began = [], time.perf_counter()
    while len(samples) < requests and time.perf_counter() - began < seconds:
        start = time.perf_counter()
        bundle.answer([image])
        samples.append((time.perf_counter() - start) * 1000)
    return stats(samples, time.perf_counter() - began)


def load(url: str, body: bytes, clients: int, requests: int, seconds: float) -> dict:
    """``clients`` threads, each on its own kept-alive connection (as inference clients run),
    posting ``body`` until ``requests`` in all or ``seconds`` have passed."""
    parsed = urllib.parse.urlsplit(url)
    samples: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    per_client = max(1, requests // clients)

    def post(connection: http.client.HTTPConnection) -> None:
        connection.request("POST", parsed.path, body, {"Content-Length": str(len(body))})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}")

    def client() -> None:
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        for _ in range(3):  # warm-up
            post(connection)
        mine = []
        for _ in range(per_client):
            if time.perf_counter() > deadline:
                break
            start = time.perf_counter()
            post(connection)
            mine.append((time.perf_counter() - start) * 1000)
        connection.close()
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return stats(samples, time.perf_counter() - began)


def example_bundle(folder: Path) -> Path:
    from tango_ci import api

    project = ROOT / "projects" / "example-shapes"
    target = api.load_project(project).targets[0].name
    api.deploy_run(project, target, folder / "bundle")
    return folder / "bundle"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="a bundle folder (default: the example's)")
    parser.add_argument("--clients", default="1,4", help="concurrent clients, comma-separated")
    parser.add_argument("--requests", type=int, default=400, help="requests per measurement")
    parser.add_argument("--seconds", type=float, default=20.0, help="time cap per measurement")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        folder = args.bundle or example_bundle(Path(work))
        bundle = Bundle(folder, threads=args.threads)
        size = int(bundle.preprocess["size"])
        image = np.random.default_rng(0).integers(0, 255, (size * 2, size * 2, 3), dtype=np.uint8)
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        png = buffer.getvalue()
        tensor = json.dumps(
            {
                "inputs": [
                    {
                        "name": "images",
                        "shape": [1, 3, size, size],
                        "datatype": "FP32",
                        "data": np.zeros(3 * size * size).tolist(),
                    }
                ]
            }
        ).encode()
        log = PredictionLog(Path(work) / "log.sqlite")
        server = serve(Service(bundle, log=log), port=0, rate=0)
        host, port = server.server_address[:2]
        base = f"http://{host}:{port}/v2/models/{bundle.manifest['target']}"
        rows = [
            {
                "path": "direct (bundle.answer)",
                "clients": 1,
                **direct(bundle, image, args.requests, args.seconds),
            }
        ]
        for clients in [int(c) for c in args.clients.split(",") if c]:
            rows.append(
                {
                    "path": "serve /image",
                    "clients": clients,
                    **load(f"{base}/image", png, clients, args.requests, args.seconds),
                }
            )
            rows.append(
                {
                    "path": "serve /infer",
                    "clients": clients,
                    **load(f"{base}/infer", tensor, clients, args.requests, args.seconds),
                }
            )
        server.shutdown()
        log.close()
    one = next(r for r in rows if r["path"] == "serve /image" and r["clients"] == 1)
    results = {
        "benchmark": "serving",
        "host": host_facts(args.threads),
        "bundle": {k: bundle.manifest.get(k) for k in ("project", "target", "version", "engine")},
        "image": f"{size * 2}x{size * 2} PNG, network input {size}x{size}",
        "rows": rows,
        "overhead_ratio_p50": one["p50_ms"] / rows[0]["p50_ms"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = (
        [
            "# serve against the runtime called directly\n",
            f"{results['host']['cpu']}, {args.threads} threads; bundle {results['bundle']}; "
            f"image {results['image']}; prediction log on.\n",
            "| path | clients | requests | p50 ms | p99 ms | throughput /s |",
            "|---|---|---|---|---|---|",
        ]
        + [
            f"| {r['path']} | {r['clients']} | {r['requests']} | {r['p50_ms']:.3g} | "
            f"{r['p99_ms']:.3g} | {r['throughput_per_s']:.0f} |"
            for r in rows
        ]
        + [
            "",
            f"Overhead of serve (image endpoint, one client) at p50: "
            f"{results['overhead_ratio_p50']:.2f}x the direct call.",
            "",
        ]
    )
    (args.out / "serving.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
