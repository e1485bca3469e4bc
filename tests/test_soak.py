"""A soak test: gunicorn as `replyguard serve` runs it (2 workers, 32 threads), 10,000
suggestion requests from 32 concurrent clients, and production swapped five times between
two model versions while they run. Every request must be answered, and no web worker may
keep a model it swapped out (its memory after the fifth swap is compared with its memory
after the second).

A web worker swaps models when a request finds production changed, so requests must reach
both workers: each client opens a new connection every CONNECTION_REQUESTS requests (on
keep-alive connections alone, all 32 may sit on one worker and the other never swaps). The
swaps are spread over the 10,000 requests, each once the previous one is served by both
workers; should the clients be faster than that, they go on past 10,000 until the fifth
swap is served.
"""

from __future__ import annotations

import http.client
import itertools
import json
import shutil
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from core.db import Database
from core.keys import create_key
from core.schema import Example
from core.schema import Role
from models.artifact import load_model
from models.encoder import Encoder
from models.registry import artifact_dir
from models.registry import get_version
from models.registry import register
from tests.helpers import gunicorn
from tests.helpers import make_settings

pytestmark = pytest.mark.integration

REQUESTS = 10_000
CLIENTS = 32
CONNECTION_REQUESTS = 20
# Production moves v1 -> v2 -> v1 -> v2 -> v1 -> v2: promote once, then roll back four times.
SWAPS = [
    ("v2", "promote"),
    ("v1", "rollback"),
    ("v2", "rollback"),
    ("v1", "rollback"),
    ("v2", "rollback"),
]
# How much a web worker's resident memory may grow from the second swap to the fifth, in MB:
# from the second, because a worker holds two models from then on (old and new are both alive
# at a swap, and the allocator keeps the memory of the larger of the two for the next).
# Measured: loading each model in a new thread, as the web server did before, grew each
# worker by about a model per swap (14 to 18 MB over four swaps with the 4.5 MB models of the
# 38-reply response set): glibc keeps the memory of a model freed in another thread's malloc
# arena. Loading them all in one thread (webapp/serving.py), with the catalogue's response set
# (1,069 more replies): 7.8 to 9.6 MB at the second swap (the second model), then 0.2 to 1 MB
# a swap (2.6 to 6.5 MB from the second swap to the fifth, CI and one run of 13 swaps), what
# the requests in between add. A model kept per swap would add three models (over 20 MB).
RSS_GROWTH_MB = 10


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def web_workers(master: int) -> list[int]:
    """The gunicorn worker processes of a master process."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def swaps_done(base: str) -> float:
    """replyguard_model_swaps_total, summed over the web workers by /metrics."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "replyguard_model_swaps":
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    return 0.0


def test_10000_requests_at_32_clients_through_five_swaps_without_error_or_growth(
    trained_dir: Path, tmp_path: Path, encoder: Encoder
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(trained_dir, data_dir)
    settings = make_settings(data_dir)
    db = Database(settings)
    with db.session() as session:
        client_key, _ = create_key(session, "soak", Role.CLIENT, "tester")
        reviewer_key, _ = create_key(session, "soak staff", Role.REVIEWER, "tester")
        messages = list(session.scalars(select(Example.message).limit(500)))
        v1 = get_version(session, "v1")
        path, checksum = artifact_dir(settings, v1), v1.checksum
    # The second version: the same model under another name (a new artifact and checksum, so
    # every swap loads a model from disk).
    model, _ = load_model(path, encoder, checksum)
    assert register(db, settings, model, generation=0, parent="v1", metadata={}).version == "v2"
    db.dispose()

    with gunicorn(data_dir, workers=2, threads=32) as server:
        port, base = server.port, server.base
        workers = web_workers(server.process.pid)
        assert len(workers) == 2
        tickets = itertools.count()
        answered: Counter[tuple[int, str]] = Counter()
        lock = threading.Lock()
        swapped = threading.Event()

        def client() -> None:
            headers = {"Authorization": f"Bearer {client_key}"}
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for sent in itertools.count(1):
                ticket = next(tickets)
                if ticket >= REQUESTS and swapped.is_set():
                    break
                body = json.dumps({"message": messages[ticket % len(messages)]})
                try:
                    connection.request("POST", "/v1/suggestions", body, headers)
                    response = connection.getresponse()
                    payload = json.loads(response.read())
                    outcome = (response.status, payload.get("model_version", str(payload)))
                except (OSError, http.client.HTTPException) as exc:
                    outcome = (0, type(exc).__name__)
                with lock:
                    answered[outcome] += 1
                if outcome[0] == 0 or sent % CONNECTION_REQUESTS == 0:
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.close()

        def done() -> int:
            with lock:
                return sum(answered.values())

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        memory: list[list[float]] = []
        for number, (version, action) in enumerate(SWAPS, start=1):
            while done() < number * REQUESTS // (len(SWAPS) + 1):
                time.sleep(0.05)
            request = urllib.request.Request(
                f"{base}/v1/models/{version}/{action}",
                data=json.dumps({"reason": f"soak swap {number}"}).encode(),
                headers={"Authorization": f"Bearer {reviewer_key}"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert json.load(answer) == {"version": version, "status": "production"}
            # Both workers have swapped when the counter they share says so.
            deadline = time.monotonic() + 60
            while swaps_done(base) < 2 * number:
                assert time.monotonic() < deadline, f"swap {number} not served in 60 s"
                time.sleep(0.1)
            memory.append([rss_mb(pid) for pid in workers])
        swapped.set()
        for thread in threads:
            thread.join(300)
        assert not any(thread.is_alive() for thread in threads)
        assert web_workers(server.process.pid) == workers  # no worker restarted on the way

    assert sum(answered.values()) >= REQUESTS
    assert {status for status, _ in answered} == {200}, answered
    assert {version for _, version in answered} == {"v1", "v2"}
    for first, last in zip(memory[1], memory[-1], strict=True):
        assert last - first < RSS_GROWTH_MB, f"MB of each worker after each swap: {memory}"
