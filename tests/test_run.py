"""`replyguard run` (what `make run` starts): serves, and stops everything on SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from contextlib import suppress
from pathlib import Path

import psutil
import pytest

from tests.helpers import check_console
from webapp.launch import free_port
from webapp.launch import stop_server
from webapp.launch import wait_ready

pytestmark = pytest.mark.integration


def processes_with(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (the test's own data folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


def test_run_serves_then_stops_its_children_and_redis_on_sigterm(tmp_path: Path) -> None:
    data_dir = tmp_path / "run-data"
    port = free_port()
    replyguard = str(Path(sys.executable).parent / "replyguard")
    # The tests' small corpus: what is tested is starting and stopping, not the demo's size.
    env = dict(
        os.environ,
        REPLYGUARD_DATA_DIR=str(data_dir),
        REPLYGUARD_DEMO_DATASET="chatterbot",
        REPLYGUARD_RESPONSE_SET__MIN_SUPPORT="1",
        HF_HUB_OFFLINE="1",
    )
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen(
        [replyguard, "run", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # Loading the demo and training the baseline take over 3 minutes on a shared 2-core
        # machine (load 14).
        wait_ready(f"http://127.0.0.1:{port}", process, timeout=420)
        assert len(processes_with(str(data_dir))) >= 3  # run, worker, web (and redis)
        # To the whole process group, as Ctrl-C in a terminal does: the worker stops too.
        # Right after ready the first generation is usually still being followed; the stop
        # must interrupt that, not wait for a generation whose worker is gone.
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            stop_server(process)
        # A failed wait leaves the pipe open; closed here, not by a later test's collection.
        if process.stdout is not None:
            process.stdout.close()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-2000:]
    assert "SIGTERM: stopping the web server, the workers and Redis" in text
    # Sentences on the console; the JSON log lines in the data folder.
    assert '"level"' not in text
    assert '"level": "INFO"' in (data_dir / "logs" / "run.log").read_text()
    assert text.rstrip().endswith(f"Stopped. Everything is kept in {data_dir.resolve()}.")
    assert processes_with(str(data_dir)) == []
    # Into a pipe (a log file, a container's log): no library's lines, and progress as plain
    # lines that say what they count, never a bar redrawn with carriage returns.
    check_console(text)


@contextmanager
def running(
    data_dir: Path, port: int, trained_dir: Path, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`replyguard run --no-generation` on ``data_dir``, a copy of the tests' trained data
    folder (so `run` loads no demo and trains no baseline: what is tested is what happens
    once it serves), ready; its console output in ``<data_dir>.out``. Killed with its
    children if a test fails."""
    shutil.copytree(trained_dir, data_dir)
    replyguard = str(Path(sys.executable).parent / "replyguard")
    environ = dict(
        os.environ,
        REPLYGUARD_DATA_DIR=str(data_dir),
        REPLYGUARD_DEMO_DATASET="chatterbot",
        REPLYGUARD_RESPONSE_SET__MIN_SUPPORT="1",
        HF_HUB_OFFLINE="1",
        **env,
    )
    environ.pop("REDIS_URL", None)
    environ.pop("DATABASE_URL", None)
    with data_dir.with_suffix(".out").open("wb") as out:
        process = subprocess.Popen(
            [replyguard, "run", "--no-generation", "--port", str(port)],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, timeout=300)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        leftover = processes_with(str(data_dir))
        with suppress(ValueError):
            leftover.append(redis_server(data_dir))
        for pid in leftover:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def wait_until(condition: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.2)


def redis_server(data_dir: Path) -> int:
    """The embedded redis-server of ``data_dir``: it works in ``<data_dir>/redis`` (where its
    database file is). Not found by its environment: redis-server writes its process title
    over it."""
    folder = str((data_dir / "redis").resolve())
    found = []
    for process in psutil.process_iter(["name"]):
        with suppress(psutil.Error):
            if process.info["name"] == "redis-server" and process.cwd() == folder:
                found.append(process.pid)
    [pid] = found
    return pid


def log_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


# Run in a process of its own that becomes the subreaper of its orphans (prctl
# PR_SET_CHILD_SUBREAPER, 36) and never reaps them: the killed daemon then stays a zombie, as
# under a container's init that does not reap.
ZOMBIE_REDIS = """
import ctypes, os, signal, sys, time
from pathlib import Path
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
from worker.broker import embedded_redis_pid, embedded_redis_url, restart_embedded_redis
from worker.broker import server_running, stop_embedded_redis
from worker.settings import load_settings
settings = load_settings({"data_dir": sys.argv[1]}, environ={})
url = embedded_redis_url(settings)
first = embedded_redis_pid(settings)
os.kill(first, signal.SIGKILL)
while Path(f"/proc/{first}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
    time.sleep(0.05)
assert embedded_redis_pid(settings) == 0 and not server_running(first)
assert restart_embedded_redis(settings) == url
second = embedded_redis_pid(settings)
assert second not in (0, first) and server_running(second), (first, second)
stop_embedded_redis()
print("restarted", first, second)
"""


def test_a_killed_redis_left_a_zombie_is_started_again(tmp_path: Path) -> None:
    """Before: the killed server, a zombie its parent (init, in a container) had not reaped,
    still counted as running by its pid file, so `run` logged "started again" with the dead
    pid and generations answered 503 (faults item 9, failing whenever init reaped late)."""
    done = subprocess.run(
        [sys.executable, "-c", ZOMBIE_REDIS, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("restarted")


def test_the_embedded_redis_is_restarted_when_it_dies(tmp_path: Path, trained_dir: Path) -> None:
    """Killing the redis-server that `run` started (before: nothing logged, never restarted,
    generations answered 503 until `run` was restarted): the exit is logged and Redis starts
    again on the same socket, after the same backoff as the other children, and a generation
    can be started and is picked up by the worker (faults item 9)."""
    data_dir = tmp_path / "run-data"
    port = free_port()
    with running(data_dir, port, trained_dir) as process:
        first = redis_server(data_dir)
        os.kill(first, signal.SIGKILL)
        run_log = data_dir / "logs" / "run.log"

        def restarted() -> bool:
            return any(
                line["message"].startswith("the redis process started again")
                for line in log_lines(run_log)
            )

        wait_until(restarted, "redis started again")
        messages = [str(line["message"]) for line in log_lines(run_log)]
        assert f"the redis process (pid {first}) is gone; starting it again in 1 s" in messages
        second = redis_server(data_dir)
        assert second != first
        console = data_dir.with_suffix(".out").read_text()
        assert f"the redis process (pid {first}) is gone" in console

        token = subprocess.run(
            [
                *(str(Path(sys.executable).parent / "replyguard"), "--data-dir", str(data_dir)),
                *("keys", "create", "--role", "reviewer", "--name", "test"),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        ).stdout.strip()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/generations",
            data=b"{}",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 202
            generation_id = json.load(answer)["generation_id"]

        def picked_up() -> bool:
            status = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/generations/{generation_id}",
                headers={"Authorization": f"Bearer {token}"},
            )
            with urllib.request.urlopen(status, timeout=30) as answer:
                return bool(json.load(answer)["status"] != "queued")

        wait_until(picked_up, "the worker took the generation from the restarted Redis", 120)
        process.send_signal(signal.SIGTERM)
        assert process.wait(120) == 0
    assert processes_with(str(data_dir)) == []


def test_stopping_run_kills_a_web_worker_stuck_holding_the_gil(
    tmp_path: Path, trained_dir: Path
) -> None:
    """A gunicorn worker whose request thread spins in C code holding the GIL (its SIGTERM
    handler never runs; before, `run` printed "Stopped" and left it orphaned on the port):
    `run` stops within the grace period, SIGKILLs the web server's whole process group, and
    nothing of the service is left (faults item 11)."""
    data_dir = tmp_path / "run-data"
    port = free_port()
    with running(
        data_dir,
        port,
        trained_dir,
        REPLYGUARD_FAULT_HANG_WEB="1",
        REPLYGUARD_STOP_GRACE_SECONDS="5",
    ) as process:
        (data_dir / "faults").mkdir(exist_ok=True)
        (data_dir / "faults" / "web.hang").touch()
        hanging = data_dir / "faults" / "web.hanging"
        wait_until(hanging.exists, "the web worker hangs")
        stuck = int(hanging.read_text())
        assert psutil.Process(stuck).name() in {"gunicorn", "python", "python3"}
        time.sleep(1)
        started = time.monotonic()
        # `kill PID` of run only, as an operator or a service manager does.
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
        took = time.monotonic() - started
        output = data_dir.with_suffix(".out").read_text()
        assert code == 0, output[-2000:]
        assert output.rstrip().endswith(f"Stopped. Everything is kept in {data_dir.resolve()}.")
        assert took < 20, f"stopping took {took:.0f} s"
        assert not psutil.pid_exists(stuck) or psutil.Process(stuck).status() == "zombie"
        assert processes_with(str(data_dir)) == []
