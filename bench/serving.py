"""Serving throughput and latency with 1, 8 and 32 concurrent clients, against the encoder's
batched ceiling and a naive peer, all in the same run.

Usage:
    .venv/bin/python -m bench.serving [--data-dir var/bench-quality] [--out docs/figures/serving.json]

- ours: `replyguard`'s API under gunicorn as `replyguard serve` and docker-compose.yml run it
  (2 workers, 32 threads each, micro-batching with 2 batching threads each), with a
  client key, recording incoming messages as in production, on the configured encoder
  backend (REPLYGUARD_ENCODER__BACKEND; default ONNX int8);
- naive: bench/naive_peer.py under the same gunicorn settings: each request encoded alone
  with sentence-transformers' defaults (PyTorch), then a flat index search;
- ceiling: the service's encoder alone, in this process, on all cores, encoding the same
  kind of messages 64 at a time (best of three passes); PyTorch's ceiling is printed beside it for reference;
- worker classes: our API under the buffering worker and under gunicorn's plain threaded
  worker (what `replyguard serve` ran before webapp/buffering.py), both up at once and
  measured in turns at 32 clients, for the cost of reading requests before a thread takes
  them;
- stalled: for ours and gthread, 64 connections that send a request head and stall, then
  ordinary requests one at a time: how long each takes (5 s at most each; the probe stops
  after 3 requests that got no answer).

Every message is distinct (demo messages with a numbered suffix), so no cache answers for
the encoder. The load generator is a separate process with one keep-alive connection per
client; each level is bounded in requests and seconds. Everything shares the machine's two
cores, the load generator included.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.common import distinct_messages
from bench.common import encode_rate
from core.db import Database
from core.keys import create_key
from core.schema import Role
from models.encoder import Encoder
from models.registry import artifact_dir
from models.registry import production
from webapp.launch import free_port
from webapp.launch import gunicorn_command
from webapp.launch import server_env
from webapp.launch import start_server
from webapp.launch import stop_server
from worker.settings import load_settings

LEVELS = {1: 400, 8: 1200, 32: 2400}
SECONDS_PER_LEVEL = 60.0
STALLED = 64
STALL_PROBES = 20
STALL_TIMEOUT = 5.0
COMPARE_ROUNDS = 4
COMPARE_WARMUP = 200


def batched_rate(encoder: Encoder, texts: list[str], rounds: int = 3) -> float:
    """Messages per second, encoded 64 at a time after one warm-up batch: the best of
    ``rounds`` passes over distinct thirds of ``texts`` (the machine is noisy, and a ceiling
    should not be lowered by noise)."""
    encoder.encode(texts[:64])
    size = len(texts) // rounds
    return max(encode_rate(encoder, texts[r * size : (r + 1) * size], 64) for r in range(rounds))


def _client(
    port: int,
    path: str,
    headers: dict[str, str],
    texts: list[str],
    deadline: float,
    out: list[float],
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for text in texts:
        if time.monotonic() > deadline:
            break
        start = time.perf_counter()
        connection.request("POST", path, body=json.dumps({"message": text}), headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}")
        out.append(time.perf_counter() - start)
    connection.close()


def _load(
    port: int,
    path: str,
    headers: dict[str, str],
    clients: int,
    texts: list[str],
    queue: multiprocessing.Queue,
) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + SECONDS_PER_LEVEL
    latencies: list[list[float]] = [[] for _ in range(clients)]
    threads = [
        threading.Thread(
            target=_client, args=(port, path, headers, texts[i::clients], deadline, latencies[i])
        )
        for i in range(clients)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    flat = sorted(x for row in latencies for x in row)
    queue.put({"requests": len(flat), "seconds": elapsed, "latencies": flat})


def measure(
    port: int, path: str, headers: dict[str, str], clients: int, texts: list[str]
) -> dict[str, float]:
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    process = multiprocessing.Process(
        target=_load, args=(port, path, headers, clients, texts, queue)
    )
    process.start()
    result = queue.get(timeout=SECONDS_PER_LEVEL + 120)
    process.join(30)
    latencies = result["latencies"]
    return {
        "clients": clients,
        "requests": result["requests"],
        "throughput_rps": round(result["requests"] / result["seconds"], 1),
        "p50_ms": round(1000 * statistics.median(latencies), 2),
        "p99_ms": round(1000 * latencies[max(0, int(0.99 * len(latencies)) - 1)], 2),
    }


def levels(
    name: str, port: int, path: str, headers: dict[str, str], texts: list[str]
) -> list[dict[str, float]]:
    """Every load level in turn, each with messages no earlier level sent."""
    rows, offset = [], 0
    for clients, count in LEVELS.items():
        rows.append(measure(port, path, headers, clients, texts[offset : offset + count]))
        offset += count
        print(f"{name:5}", rows[-1])
    return rows


def stalled_probe(port: int, headers: dict[str, str], texts: list[str]) -> dict[str, object]:
    """Latency of ordinary requests, one at a time, while STALLED connections hold a request
    head whose body never comes. Bounded: STALL_TIMEOUT seconds a request, and it stops after
    three requests without an answer."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    stalled = []
    try:
        for _ in range(STALLED):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(
                f"POST /v1/suggestions HTTP/1.1\r\nHost: bench\r\n{head}"
                "Content-Length: 100\r\n\r\n".encode()
            )
            stalled.append(sock)
        time.sleep(0.5)
        answered: list[float] = []
        unanswered = 0
        for text in texts[:STALL_PROBES]:
            if unanswered >= 3:
                break
            start = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=STALL_TIMEOUT)
            try:
                connection.request(
                    "POST", "/v1/suggestions", json.dumps({"message": text}), headers
                )
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    answered.append(time.perf_counter() - start)
            except TimeoutError:
                unanswered += 1
            finally:
                connection.close()
    finally:
        for sock in stalled:
            sock.close()
    return {
        "stalled_connections": STALLED,
        "answered": len(answered),
        "unanswered_within_s": STALL_TIMEOUT if unanswered else None,
        "unanswered": unanswered,
        "max_ms": round(1000 * max(answered), 1) if answered else None,
        "median_ms": round(1000 * statistics.median(answered), 1) if answered else None,
    }


def compare_worker_classes(
    data_dir: Path, headers: dict[str, str], texts: list[str], workers: int, threads: int
) -> dict[str, object]:
    """Throughput at 32 clients under the buffering worker (ours) and gunicorn's plain
    gthread, both servers up at once, each warmed with COMPARE_WARMUP requests, then
    measured in turns, the order swapped every round (AB BA AB BA...; COMPARE_ROUNDS rounds
    of an equal share of ``texts``), so that a change in the machine's load falls on both
    alike; then gthread's stalled-client probe on the last STALL_PROBES of ``texts``."""
    ports = {name: free_port() for name in ("buffering", "gthread")}
    servers = {
        "buffering": start_server(data_dir, ports["buffering"], workers, threads),
        "gthread": start_server(
            data_dir, ports["gthread"], workers, threads, worker_class="gthread"
        ),
    }
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    warmup = texts[: 2 * COMPARE_WARMUP]
    measured = texts[2 * COMPARE_WARMUP : -STALL_PROBES]
    size = len(measured) // (2 * COMPARE_ROUNDS)
    try:
        for i, name in enumerate(servers):
            share = warmup[i * COMPARE_WARMUP : (i + 1) * COMPARE_WARMUP]
            measure(ports[name], "/v1/suggestions", headers, 32, share)
        for r in range(COMPARE_ROUNDS):
            order = list(servers) if r % 2 == 0 else list(reversed(servers))
            for i, name in enumerate(order):
                share = measured[(2 * r + i) * size : (2 * r + i + 1) * size]
                rounds[name].append(measure(ports[name], "/v1/suggestions", headers, 32, share))
                print(f"{name:9} round {r + 1}", rounds[name][-1])
        stalled = stalled_probe(ports["gthread"], headers, texts[-STALL_PROBES:])
        print("gthread stalled", stalled)
    finally:
        for server in servers.values():
            stop_server(server)
    medians = {
        name: statistics.median(row["throughput_rps"] for row in rows)
        for name, rows in rounds.items()
    }
    return {
        "rounds": rounds,
        "median_rps": medians,
        "buffering_vs_gthread": round(medians["buffering"] / medians["gthread"], 3),
        "stalled": stalled,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="var/bench-quality")
    parser.add_argument("--out", default="docs/figures/serving.json")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for ours")
    parser.add_argument("--threads", type=int, default=32, help="threads per worker for ours")
    args = parser.parse_args()
    data_dir = Path(args.data_dir)
    settings = load_settings({"data_dir": str(data_dir)})
    db = Database(settings)
    with db.session() as session:
        token, _ = create_key(session, "bench-serving", Role.CLIENT, "bench")
        row = production(session)
        if row is None:
            raise SystemExit(f"{data_dir} has no model: run bench/quality.py first")
        artifact = artifact_dir(settings, row)
    db.dispose()
    per_server = sum(LEVELS.values())
    texts = distinct_messages(
        per_server * 2 + LEVELS[32] + 2 * COMPARE_WARMUP + 2 * STALL_PROBES + 3_000
    )

    sample = texts[-3_000:]
    ceiling = batched_rate(Encoder(backend=settings.encoder.backend, cache_size=0), sample)
    torch_ceiling = batched_rate(Encoder(backend="torch", cache_size=0), sample)
    print(
        f"encoder ceiling: {ceiling:.0f} messages/s ({settings.encoder.backend}, batches of 64); "
        f"PyTorch: {torch_ceiling:.0f}/s"
    )

    results: dict[str, list[dict[str, float]]] = {"ours": [], "naive": []}
    stalls: dict[str, dict[str, object]] = {}
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    probes = texts[-3_000 - STALL_PROBES : -3_000]
    port = free_port()
    # The server's own lines, to read when a level fails.
    server_log = data_dir / "logs" / "bench-serving.log"
    server_log.parent.mkdir(parents=True, exist_ok=True)
    server = start_server(
        data_dir, port, workers=args.workers, threads=args.threads, log=server_log
    )
    try:
        results["ours"] = levels("ours", port, "/v1/suggestions", headers, texts[:per_server])
        stalls["ours"] = stalled_probe(port, headers, probes)
        print("ours  stalled", stalls["ours"])
    finally:
        stop_server(server)

    span = LEVELS[32] + 2 * COMPARE_WARMUP + STALL_PROBES
    before = texts[2 * per_server : 2 * per_server + span]
    compared = compare_worker_classes(data_dir, headers, before, args.workers, args.threads)
    stalls["gthread"] = compared.pop("stalled")  # type: ignore[assignment]

    port = free_port()
    command = gunicorn_command("127.0.0.1", port, workers=args.workers, threads=args.threads)
    command[1] = "bench.naive_peer:app"
    env = server_env(
        data_dir, NAIVE_ARTIFACT=str(artifact), PYTHONPATH=str(Path(__file__).resolve().parents[1])
    )
    naive = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_naive(port, naive)
        json_only = {"Content-Type": "application/json"}
        results["naive"] = levels(
            "naive", port, "/suggest", json_only, texts[per_server : 2 * per_server]
        )
    finally:
        stop_server(naive)

    at32 = {name: rows[-1]["throughput_rps"] for name, rows in results.items()}
    report = {
        "encoder_backend": settings.encoder.backend,
        "encoder_ceiling_per_s": round(ceiling, 1),
        "torch_ceiling_per_s": round(torch_ceiling, 1),
        **results,
        "ours_vs_ceiling_at_32": round(at32["ours"] / ceiling, 3),
        "ours_vs_torch_ceiling_at_32": round(at32["ours"] / torch_ceiling, 3),
        "ours_vs_naive_at_32": round(at32["ours"] / at32["naive"], 2),
        "worker_classes_at_32": compared,
        "stalled": stalls,
        "cpus": os.cpu_count(),
        "ours_server": {
            "workers": args.workers,
            "threads": args.threads,
            "encoder_threads": settings.encoder.threads or 1,
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k not in ("ours", "naive")}, indent=2))


def _wait_naive(port: int, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the naive peer exited while starting")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request(
                "POST",
                "/suggest",
                body=b'{"message": "hi"}',
                headers={"Content-Type": "application/json"},
            )
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("the naive peer did not start")


if __name__ == "__main__":
    sys.exit(main())
