"""What the rate limiter costs a request: no limits, counts in memory, counts in Redis.

Usage:
    .venv/bin/python -m bench.limits [--requests 3000] [--out docs/figures/limits.json]

Sends ``--requests`` sequential ``GET /v1/models`` with one client key through the Flask test
client (in process: no network, so the limiter's share is not hidden by it) to an app on a
fresh, empty data folder, once with ``REPLYGUARD_RATE_LIMIT`` empty (no limit checked), once
counting in memory and once in the embedded redis-server over its unix socket (what
``replyguard run`` uses). Three interleaved rounds, each on a new app (one limiter serves the
process's latest app); the fastest round of each mode counts. Writes the mean wall-clock and
CPU time per request, the limiter's added cost and the machine's load average to the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from core.keys import create_key
from core.schema import Role
from models.encoder import Encoder
from worker.broker import embedded_redis_url
from worker.broker import stop_embedded_redis
from worker.settings import load_settings

ROUNDS = 3


def per_request_ms(
    overrides: dict[str, Any], encoder: Encoder, requests: int
) -> tuple[float, float]:
    """One round on a new app: mean milliseconds per ``GET /v1/models``, wall-clock and this
    process's CPU (which a busy machine inflates less; Redis's own CPU is not in it)."""
    from webapp import create_app

    # Far above what the benchmark sends: every request is counted, none refused.
    app = create_app({"rate_limit": "1000000/minute", **overrides}, encoder=encoder)
    with app.extensions["replyguard"].db.session() as session:
        token, _ = create_key(session, "bench-limits", Role.CLIENT, "bench")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(100):  # warm the key cache, the database connection and Redis's scripts
        client.get("/v1/models", headers=headers)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(requests):
        if client.get("/v1/models", headers=headers).status_code != 200:
            raise SystemExit("a request failed")
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    app.extensions["replyguard"].db.dispose()
    return elapsed / requests * 1000, cpu / requests * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--out", default="docs/figures/limits.json")
    args = parser.parse_args()
    encoder = Encoder()
    with tempfile.TemporaryDirectory() as folder:
        data_dir = str(Path(folder) / "data")
        redis_url = embedded_redis_url(load_settings({"data_dir": data_dir}))
        try:
            modes = {
                "none": {"rate_limit": ""},
                "memory": {},
                "redis": {"redis_url": redis_url},
            }
            rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in modes}
            # Interleaved, so that a busy spell of the shared machine hits every mode alike.
            for _ in range(ROUNDS):
                for name, overrides in modes.items():
                    settings = {"data_dir": data_dir, **overrides}
                    rounds[name].append(per_request_ms(settings, encoder, args.requests))
            wall = {name: min(w for w, _ in values) for name, values in rounds.items()}
            cpu = {name: min(c for _, c in values) for name, values in rounds.items()}
        finally:
            stop_embedded_redis()
    report = {
        "requests": args.requests,
        "rounds": ROUNDS,
        "wall_ms_per_request": {name: round(value, 4) for name, value in wall.items()},
        "cpu_ms_per_request": {name: round(value, 4) for name, value in cpu.items()},
        "rounds_wall_ms": {
            name: [round(w, 4) for w, _ in values] for name, values in rounds.items()
        },
        "limiter_wall_ms": {
            name: round(wall[name] - wall["none"], 4) for name in ("memory", "redis")
        },
        "limiter_cpu_ms": {name: round(cpu[name] - cpu["none"], 4) for name in ("memory", "redis")},
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(report, indent=2))
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
