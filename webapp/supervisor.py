"""`replyguard run`: the embedded default on one machine, under one command.

This process owns the embedded Redis server and supervises a Celery worker and the gunicorn
web server as child processes; Ctrl-C (or SIGTERM) stops them all. Logs of the children go
to ``<data folder>/logs/``.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from types import FrameType

import click

from webapp.launch import gunicorn_command
from webapp.launch import server_env
from webapp.launch import stop_server
from webapp.launch import wait_ready
from webapp.launch import worker_command
from worker.broker import broker_url
from worker.broker import stop_embedded_redis
from worker.celery_app import sender
from worker.context import PipelineContext
from worker.dispatch import queue_generation
from worker.pipeline import GenerationError


class Stopped(BaseException):
    """SIGINT or SIGTERM arrived: stop everything and exit. A BaseException, like
    KeyboardInterrupt, so that no library's `except Exception` swallows it."""


def run_everything(
    ctx: PipelineContext,
    host: str,
    port: int,
    keys: str,
    run_generation: bool,
    follow: Callable[[int, Callable[[], None]], str],
) -> None:
    settings = ctx.settings
    url = broker_url(settings)  # starts the embedded redis-server unless REDIS_URL is set
    settings = settings.with_overrides(redis_url=url)
    env = server_env(settings.data_dir, REDIS_URL=url)
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    children: dict[str, subprocess.Popen[bytes]] = {}

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

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        with (logs / "worker.log").open("ab") as out:
            children["worker"] = subprocess.Popen(
                worker_command(), env=env, stdout=out, stderr=subprocess.STDOUT
            )
        # Webhook deliveries on their own worker: a slow receiver never delays a generation.
        with (logs / "notifier.log").open("ab") as out:
            children["notifier"] = subprocess.Popen(
                worker_command(queue="notifications"),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        with (logs / "web.log").open("ab") as out:
            children["web"] = subprocess.Popen(
                gunicorn_command(host, port, workers=1, threads=32),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        base = f"http://{host}:{port}"
        wait_ready(base, children["web"])
        click.echo(
            f"\nServing on {base} (logs of run, the worker and the web server in {logs}).\n"
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
            for name, child in children.items():
                if child.poll() is not None:
                    raise click.ClickException(
                        f"the {name} process exited with code {child.returncode}; "
                        f"see {logs / (name + '.log')}"
                    )
            time.sleep(0.5)
    except Stopped as signal_name:
        click.echo(f"\n{signal_name}: stopping the web server, the worker and Redis...")
    finally:
        for child in children.values():
            stop_server(child)
        stop_embedded_redis()
    # Only after a clean stop: the operator knows the ports are free and nothing was lost.
    click.echo(f"Stopped. Everything is kept in {settings.data_dir.resolve()}.")


def _one_generation(
    ctx: PipelineContext,
    follow: Callable[[int, Callable[[], None]], str],
    check: Callable[[], None],
) -> None:
    click.echo("Running one guarded generation on the demo traffic...")
    try:
        generation_id = queue_generation(sender(ctx.settings), ctx, actor="replyguard run")
    except GenerationError as exc:
        click.echo(f"no generation started: {exc}")
        return
    follow(generation_id, check)  # prints the generation's report when it ends
