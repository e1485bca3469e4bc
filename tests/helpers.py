"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlalchemy import select

from core.db import Database
from core.schema import Example
from core.schema import Generation
from webapp.launch import free_port
from webapp.launch import server_env
from webapp.launch import start_server
from webapp.launch import stop_server
from webapp.launch import worker_command
from worker.celery_app import sender
from worker.settings import Settings
from worker.settings import load_settings

# Small enough to train in a few seconds, large enough for every demo niche. The demo data is
# the small chatterbot corpus (core/demo.py): the default chitchat demo takes half a minute.
FAST_TRAINING = {
    "adapter": {"epochs": 8},
    "demo_dataset": "chatterbot",
    # The chatterbot corpus is one-off replies: with the support rule at its default nearly
    # nothing would be served. The rule has tests of its own (tests/test_response_set.py), at
    # its default and at N-1/N.
    "response_set": {"min_support": 1},
}


# What a console must never show: the libraries' own lines (log records, warnings) and
# progress bars that do not say what they count.
LIBRARY_LINES = (
    "torch_dtype",
    "is deprecated",
    "No 'model.onnx' found",
    "heavily recommended",
    "Batches",
    "it/s]",
    "Warning:",
    '"level"',
)


# A progress line of a command: what is encoded, or which stage of which generation; its
# share done, and what else it says.
PROGRESS_LINE = re.compile(
    r"^(encoding [\d,]+ [a-z ]+ of the [a-z ]+( \([\d,]+ more from the cache\))?"
    r"|generation \d+, stage \d+/\d+ [a-z]+ \([a-z ]+\)): \d{1,3}%( .*)?$"
)


def check_console(text: str) -> None:
    """Assert that a command's console output, written to a pipe or a file, has none of the
    libraries' lines (:data:`LIBRARY_LINES`), no carriage return, and only labelled progress
    lines (:data:`PROGRESS_LINE`), among them the end of encoding the training messages."""
    assert "\r" not in text
    assert not [line for line in LIBRARY_LINES if line in text], text[-4000:]
    progress = [line for line in text.splitlines() if re.search(r": \d{1,3}%", line)]
    assert not [line for line in progress if not PROGRESS_LINE.match(line)], text[-4000:]
    assert any(
        re.match(r"encoding [\d,]+ messages of the training set: 100% \(", line)
        for line in progress
    ), text[-4000:]


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    return load_settings({"data_dir": str(data_dir), **FAST_TRAINING, **overrides}, environ={})


def migrated(settings: Settings) -> Iterator[Database]:
    """For fixtures (``yield from``): a migrated database, disposed of afterwards."""
    database = Database(settings)
    database.upgrade()
    yield database
    database.dispose()


def at_once(count: int, call: Callable[[int], Any]) -> list[Any]:
    """Run ``call(i)`` for i in range(count) on as many threads, released together."""
    start = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        start.wait()
        results[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@dataclass(frozen=True)
class Gunicorn:
    """A running gunicorn server on 127.0.0.1 (:func:`gunicorn`)."""

    process: subprocess.Popen[bytes]
    port: int
    # Its output (gunicorn's log lines and ours).
    log: Path

    @property
    def base(self) -> str:
        """The server's URL, ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def gunicorn(data_dir: Path, workers: int = 1, threads: int = 4) -> Iterator[Gunicorn]:
    """For the tests that need a real web server: gunicorn as `replyguard serve` runs it
    (webapp.launch.start_server, the buffering worker) on ``data_dir``, on a free loopback
    port, its output in ``data_dir/server.log``, with this process's environment (REDIS_URL
    included). Ready (``/readyz``) when the block starts, stopped when it ends.

    Raises:
        webapp.launch.LaunchError: the server exited or was not ready within 120 s.
    """
    port = free_port()
    log = data_dir / "server.log"
    process = start_server(data_dir, port, workers=workers, threads=threads, log=log)
    try:
        yield Gunicorn(process, port, log)
    finally:
        stop_server(process)


# A generation's statuses once it has ended.
FINAL = {"passed", "warned", "blocked", "failed"}


def launch_worker(data_dir: Path, redis_url: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """Start a Celery worker process (``replyguard worker``'s command) on ``data_dir`` and
    ``redis_url``, its output in ``log``; adapter epochs 8 unless ``env`` says otherwise.
    Returns at once: :func:`wait_for_worker` waits for it to answer."""
    with log.open("wb") as output:
        return subprocess.Popen(
            worker_command("INFO"),
            env=server_env(
                data_dir, **{"REDIS_URL": redis_url, "REPLYGUARD_ADAPTER_EPOCHS": "8", **env}
            ),
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def wait_for_worker(
    redis_url: str, process: subprocess.Popen[bytes], workers: int = 1, timeout: float = 90
) -> None:
    """Wait until ``workers`` workers answer a ping; AssertionError if ``process`` exits or
    ``timeout`` seconds pass."""
    app = sender(load_settings({"redis_url": redis_url}, environ={}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the worker exited while starting"
        if len(app.control.ping(timeout=0.5)) >= workers:
            return
    raise AssertionError(f"{workers} worker(s) did not answer a ping within {timeout} s")


def wait_for(
    db: Database, generation_id: int, done: Callable[[Generation], bool], timeout: float = 240
) -> Generation:
    """Poll the generation until ``done`` says so; return it. AssertionError after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.session() as session:
            generation = session.get_one(Generation, generation_id)
            if done(generation):
                return generation
        time.sleep(0.3)
    raise AssertionError(f"generation {generation_id} did not get there in {timeout} s")


def human_count(db: Database) -> int:
    with db.session() as session:
        return int(
            session.scalar(select(func.count(Example.id)).where(Example.provenance == "human")) or 0
        )


def makefile_variable(name: str) -> str:
    """The value of ``NAME := value`` (or ``NAME ?= value``) in the repository's Makefile.

    Raises:
        AssertionError: the Makefile does not set it.
    """
    makefile = Path(__file__).resolve().parent.parent / "Makefile"
    for line in makefile.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.rstrip(":?+ ").strip() == name:
            return value.strip()
    raise AssertionError(f"the Makefile sets no {name}")
