"""Latency of one /v1/suggestions request through a real gunicorn server on loopback.

Usage:
    .venv/bin/python -m bench.latency [--data-dir DIR] [--requests 1000]

Sends N sequential requests (one client, keep-alive) with messages drawn from the demo
benchmark, reports the median and 99th percentile, and writes docs/figures/latency.json.
The data folder must hold a trained model: bench/quality.py prepares one.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
from pathlib import Path

import numpy as np

from core.db import Database
from core.demo import chatterbot_rows
from core.keys import create_key
from core.schema import Role
from webapp.launch import free_port
from webapp.launch import start_server
from webapp.launch import stop_server
from worker.settings import load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="var/bench-quality")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--out", default="docs/figures/latency.json")
    args = parser.parse_args()

    data_dir = Path(args.data_dir)
    db = Database(load_settings({"data_dir": str(data_dir)}))
    with db.session() as session:
        token, _ = create_key(session, "bench-latency", Role.CLIENT, "bench")
    db.dispose()
    messages = [example.message for _, example in chatterbot_rows()]
    rng = np.random.default_rng(7)
    port = free_port()
    server = start_server(data_dir, port, workers=1, threads=4)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        timings = []
        for i in range(args.requests + 20):
            body = json.dumps({"message": messages[int(rng.integers(len(messages)))]})
            start = time.perf_counter()
            connection.request("POST", "/v1/suggestions", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - start
            if response.status != 200:
                raise SystemExit(f"request {i} failed with {response.status}")
            if i >= 20:  # the first requests warm caches and threads
                timings.append(elapsed * 1000)
        connection.close()
    finally:
        stop_server(server)
    timings.sort()
    figures = {
        "requests": len(timings),
        "median_ms": round(statistics.median(timings), 2),
        "p99_ms": round(timings[int(0.99 * len(timings)) - 1], 2),
        "max_ms": round(timings[-1], 2),
        "server": "gunicorn, 1 worker, 4 threads, 127.0.0.1",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
