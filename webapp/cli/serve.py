"""`replyguard worker`, `serve` and `run`: the processes of the service (launching in
webapp/launch.py, supervision of `run` in webapp/supervisor.py)."""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from sqlalchemy import func
from sqlalchemy import select

from core.demo import load_demo
from core.keys import quickstart_keys
from core.schema import Example
from core.schema import Role
from core.settings import SettingsError
from webapp.cli.base import Context
from webapp.cli.base import main
from webapp.cli.base import pass_ctx
from webapp.cli.generation import follow
from webapp.cli.models import train_clean_baseline
from webapp.launch import WORKER_QUEUES


@main.command()
@click.option(
    "--beat", is_flag=True, help="Also run the scheduler (REPLYGUARD_GENERATION_SCHEDULE)."
)
@click.option("--loglevel", default="INFO", show_default=True)
@click.option(
    "--queue",
    type=click.Choice(WORKER_QUEUES),
    default="generations",
    show_default=True,
    help="What the worker runs: the stages of generations (one task at a time), or webhook "
    "deliveries (a few at a time). Run at least one of each.",
)
@pass_ctx
def worker(ctx: Context, beat: bool, loglevel: str, queue: str) -> None:
    """Run a Celery worker: generations (one task at a time: start more for more
    throughput) or webhook notifications (`--queue notifications`)."""
    from webapp.launch import server_env
    from webapp.launch import worker_command

    args = worker_command(loglevel, beat, queue)
    sys.stdout.flush()
    os.execve(args[0], args, server_env(ctx.settings.data_dir))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option(
    "--workers",
    default=2,
    show_default=True,
    help="gunicorn worker processes (one per core: each has its own GIL and model copy).",
)
@click.option(
    "--threads",
    default=32,
    show_default=True,
    help="Threads per worker: concurrent requests share encoder passes.",
)
@click.option(
    "--access-log",
    is_flag=True,
    help="Log every request to stdout (costs about an eighth of peak throughput).",
)
@pass_ctx
def serve(ctx: Context, host: str, port: int, workers: int, threads: int, access_log: bool) -> None:
    """Serve the API with gunicorn (each request is read in full before a thread takes it,
    so slow or stalled clients cannot hold the server's threads)."""
    from webapp.launch import LaunchError
    from webapp.launch import gunicorn_command
    from webapp.launch import server_env

    try:
        args = gunicorn_command(host, port, workers, threads, access_log)
    except LaunchError as exc:
        raise click.ClickException(str(exc)) from None
    sys.stdout.flush()
    os.execve(args[0], args, server_env(ctx.settings.data_dir))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--no-generation", is_flag=True, help="Serve without running a generation first.")
@pass_ctx
def run(ctx: Context, host: str, port: int, no_generation: bool) -> None:
    """Everything on one machine: database, demo data, the clean baseline, an embedded Redis,
    a worker and the web server; then one guarded generation; then keep serving."""
    ctx.may_create = True
    from core.logs import configure_logging
    from webapp.supervisor import RUN_ACTOR
    from webapp.supervisor import run_everything

    # The console is for the person who typed the command (what happens, in sentences); this
    # process's JSON log lines, and the libraries' warnings and log lines, go to a file beside
    # the worker's and the web server's.
    configure_logging(ctx.settings.log_level, path=ctx.settings.data_dir / "logs" / "run.log")

    click.echo(f"data folder: {ctx.settings.data_dir.resolve()}")
    from models.registry import production

    with ctx.db.session() as session:
        has_examples = session.scalar(select(func.count(Example.id))) or 0
        has_model = production(session) is not None
    if not has_examples:
        try:
            with ctx.db.session() as session:
                report = load_demo(session, ctx.settings)
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(
            f"loaded the demo data: {report.added} examples, "
            f"{report.traffic} messages as incoming traffic"
        )
    if not has_model:
        click.echo("training the clean baseline (generation 0, human data only)...")
        # Done by `run` itself on a new data folder, not by a command someone typed.
        train_clean_baseline(ctx, RUN_ACTOR)
    with ctx.db.session() as session:
        keys = quickstart_keys(session)
        lines = [
            _quickstart_line(role, variable, *keys[role])
            for role, variable in ((Role.CLIENT, "KEY"), (Role.REVIEWER, "REVIEWER_KEY"))
        ]
    run_everything(
        ctx.pipeline,
        host,
        port,
        "\n".join(lines),
        run_generation=not no_generation,
        follow=lambda generation_id, check: follow(ctx, generation_id, check),
    )


def _quickstart_line(role: Role, variable: str, token: str | None, row: Any) -> str:
    """One line of `run`'s banner about a quickstart key: the token when it was made now,
    otherwise which key it is and how to replace a lost one."""
    label = f"{role.value} key"
    if token is not None:
        return f"  {label} (shown once): export {variable}={token}"
    return (
        f"  {label}: {row.prefix}... (id {row.id}), printed at this data folder's first start; "
        f"lost it? `replyguard keys revoke {row.id} --reason lost` and start again"
    )
