"""What observing a request costs: its metrics, its JSON log line, and a scrape of /metrics.

Usage:
    .venv/bin/python -m bench.observability [--requests 20000] [--out docs/figures/observability.json]

Runs twice, each time in a fresh process: with the metrics in this process's memory (one
process, as the tests run) and in prometheus-client's multiprocess mode (files, as every
gunicorn worker runs; ``PROMETHEUS_MULTIPROC_DIR`` must be set before the library is
imported, hence the fresh process). Each run builds the app on an empty data folder and,
inside one request context of ``POST /v1/suggestions``, calls the request hooks of
webapp/observe.py ``--requests`` times: once with the log level at WARNING (metrics and
request id only: the request's line is not written) and once at INFO (the JSON line too,
written to /dev/null). Three interleaved rounds, the fastest kept; CPU time of the process,
which a busy machine inflates less than wall-clock time. Then it times ``GET /metrics``
through the Flask test client, reading the database (cache off) and from the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROUNDS = 3


def measure(requests: int) -> dict[str, Any]:
    """One process's figures (see the module docstring); runs in the child process."""
    from flask import Response

    from core.logs import configure_logging
    from webapp import create_app
    from webapp import observe

    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"data_dir": folder})
        devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the handler

        def hooks_ms(level: str) -> float:
            configure_logging(level, devnull)
            with app.test_request_context("/v1/suggestions", method="POST"):
                start = time.process_time()
                for _ in range(requests):
                    observe._begin()
                    observe._finish(Response())
                    observe._end(None)
                return (time.process_time() - start) / requests * 1000

        best = {"WARNING": float("inf"), "INFO": float("inf")}
        for _ in range(ROUNDS):
            for level in best:
                best[level] = min(best[level], hooks_ms(level))
        configure_logging("WARNING", devnull)

        client = app.test_client()
        collector = app.extensions[observe.EXTENSION]

        def scrape_ms(cache_seconds: float, count: int = 200) -> float:
            collector.cache_seconds = cache_seconds
            client.get("/metrics")
            start = time.perf_counter()
            for _ in range(count):
                if client.get("/metrics").status_code != 200:
                    raise SystemExit("a scrape failed")
            return (time.perf_counter() - start) / count * 1000

        figures = {
            "metrics_cpu_ms": round(best["WARNING"], 4),
            "metrics_and_log_line_cpu_ms": round(best["INFO"], 4),
            "log_line_cpu_ms": round(best["INFO"] - best["WARNING"], 4),
            "scrape_reading_database_ms": round(scrape_ms(0.0), 2),
            "scrape_from_cache_ms": round(scrape_ms(3600.0), 2),
        }
        app.extensions["replyguard"].db.dispose()
        devnull.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--out", default="docs/figures/observability.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.requests)))
        return

    results: dict[str, Any] = {"requests": args.requests, "rounds": ROUNDS}
    with tempfile.TemporaryDirectory() as files:
        for mode, extra in (
            ("one_process", {}),
            ("multiprocess", {"PROMETHEUS_MULTIPROC_DIR": files}),
        ):
            env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.observability",
                    "--child",
                    f"--requests={args.requests}",
                ],
                env={**env, **extra},
                capture_output=True,
                text=True,
                check=True,
            )
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    results["load_average"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
