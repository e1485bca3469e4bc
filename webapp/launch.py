"""Starting the API under gunicorn: for `replyguard serve`, tests and benchmarks alike."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


class LaunchError(RuntimeError):
    pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for tests and benchmarks)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# gunicorn's threaded worker, reading every request in full before a thread takes it.
BUFFERING_WORKER = "webapp.buffering.BufferingThreadWorker"


def gunicorn_command(
    host: str,
    port: int,
    workers: int,
    threads: int,
    access_log: bool = False,
    worker_class: str = BUFFERING_WORKER,
) -> list[str]:
    """gunicorn with threads, so concurrent requests share encoder passes (webapp/batching.py).

    The worker class is gunicorn's threaded worker reading each request in full before a
    thread takes it (webapp/buffering.py): a slow or stalled client never holds a thread.

    ``access_log`` logs every request to stdout; off by default because gunicorn formats each
    line under one lock shared by all threads: at 32 clients it cost 13% of throughput
    (bench/serving.py). Errors are logged either way. ``worker_class`` is for the benchmark
    that compares the buffering worker with gunicorn's plain ``gthread``."""
    here = Path(sys.executable).parent
    gunicorn = shutil.which("gunicorn", path=str(here)) or shutil.which("gunicorn")
    if gunicorn is None:
        raise LaunchError("gunicorn is not installed: run `make run`, or pip install the project")
    return [
        gunicorn,
        "webapp:create_app()",
        f"--bind={host}:{port}",
        f"--workers={workers}",
        f"--threads={threads}",
        f"--worker-class={worker_class}",
        # Loading the encoder and a model takes seconds; don't kill a worker that is starting.
        "--timeout=120",
        *(["--access-logfile=-"] if access_log else []),
        # One shared control socket per user would collide between servers on one machine.
        "--no-control-socket",
        # Every worker's metrics in /metrics, and JSON log lines (webapp/gunicorn_conf.py).
        f"--config=file:{Path(__file__).with_name('gunicorn_conf.py')}",
    ]


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return dict(
        os.environ, REPLYGUARD_DATA_DIR=str(data_dir.resolve()), HF_HUB_OFFLINE="1", **extra
    )


def start_server(
    data_dir: Path,
    port: int,
    workers: int = 1,
    threads: int = 4,
    log: Path | None = None,
    worker_class: str = BUFFERING_WORKER,
) -> subprocess.Popen[bytes]:
    """Start gunicorn on 127.0.0.1:port in the background and wait until /readyz says ready."""
    command = gunicorn_command("127.0.0.1", port, workers, threads, worker_class=worker_class)
    if log is None:
        process = subprocess.Popen(
            command, env=server_env(data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
    else:
        # The child keeps its own copy of the descriptor; ours can close at once.
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, env=server_env(data_dir), stdout=output, stderr=subprocess.STDOUT
            )
    try:
        wait_ready(f"http://127.0.0.1:{port}", process)
    except BaseException:
        stop_server(process)
        raise
    return process


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LaunchError(f"the server exited with code {process.returncode} while starting")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if json.load(response).get("status") == "ready":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise LaunchError(f"{url} was not ready after {timeout:.0f} s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# What `replyguard worker --queue` takes, and what each kind of worker consumes.
WORKER_QUEUES = ("generations", "notifications")
# Deliveries a notifications worker sends at once: each waits on a receiver for at most
# REPLYGUARD_NOTIFY_TIMEOUT_SECONDS, so one slow receiver does not hold up the others.
NOTIFY_CONCURRENCY = 4


def worker_command(
    loglevel: str = "INFO", beat: bool = False, queue: str = "generations"
) -> list[str]:
    """A Celery worker for one kind of task (``queue``, one of WORKER_QUEUES).

    ``generations``: the stages of generations, one task at a time (``--pool=solo``): the
    encoder and PyTorch are not fork-safe, and more throughput comes from more worker
    processes or machines. ``notifications``: webhook deliveries, NOTIFY_CONCURRENCY at a
    time in threads (they wait on the network, not the CPU), on their own queue so that a
    slow receiver never delays a generation (worker/broker.py). ``beat`` runs the
    scheduler in the same process. Raises LaunchError without celery, ValueError for
    another queue."""
    from worker.broker import GENERATIONS_QUEUE
    from worker.broker import NOTIFICATIONS_QUEUE

    if queue not in WORKER_QUEUES:
        raise ValueError(f"queue {queue!r}: one of {', '.join(WORKER_QUEUES)}")
    here = Path(sys.executable).parent
    celery = shutil.which("celery", path=str(here)) or shutil.which("celery")
    if celery is None:
        raise LaunchError("celery is not installed: run `make run`, or pip install the project")
    if queue == "generations":
        pool = ["--pool=solo", f"--queues={GENERATIONS_QUEUE}"]
    else:
        pool = [
            "--pool=threads",
            f"--concurrency={NOTIFY_CONCURRENCY}",
            f"--queues={NOTIFICATIONS_QUEUE}",
        ]
    command = [
        celery,
        "--app=worker.make_celery",
        "worker",
        *pool,
        f"--loglevel={loglevel}",
        f"--hostname=replyguard-{queue[:6]}-{secrets.token_hex(3)}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        command.append("--beat")
    return command
