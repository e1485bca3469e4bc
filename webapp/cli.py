"""The ``replyguard`` command."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import click
from sqlalchemy import func
from sqlalchemy import select

from core.db import Database
from core.ingest import ImportFailed
from core.ingest import import_file
from core.ingest import load_demo
from core.keys import create_key
from core.provenance import Provenance
from core.schema import Example
from core.schema import Role
from core.settings import Settings
from core.settings import SettingsError
from core.settings import load_settings

if TYPE_CHECKING:
    from worker.context import PipelineContext

CLI_ACTOR = "cli"


class Context:
    """Settings and database, built lazily so `--help` stays fast and side-effect free."""

    def __init__(self, data_dir: str | None) -> None:
        self._overrides = {"data_dir": data_dir} if data_dir else {}
        self._settings: Settings | None = None
        self._db: Database | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self._overrides)
            except SettingsError as exc:
                raise click.ClickException(str(exc)) from None
        return self._settings

    @property
    def pipeline(self) -> PipelineContext:
        from models.encoder import Encoder
        from worker.context import PipelineContext

        return PipelineContext(
            self.settings, self.db, Encoder.from_settings(self.settings), show_progress=True
        )

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.settings)
            self._db.upgrade()
        return self._db


pass_ctx = click.make_pass_decorator(Context)


@click.group()
@click.option(
    "--data-dir",
    envvar="REPLYGUARD_DATA_DIR",
    help="Folder for the SQLite database and model artifacts (default ./var).",
)
@click.pass_context
def main(ctx: click.Context, data_dir: str | None) -> None:
    """ReplyGuard: reply suggestions that retrain themselves without collapsing."""
    ctx.obj = Context(data_dir)


@main.group()
def db() -> None:
    """The database."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Create or migrate the schema to the newest version."""
    ctx.db.upgrade()
    click.echo(f"database ready: {_safe_url(ctx.settings.database)}")


@main.group()
def data() -> None:
    """Examples: load the demo corpus, import files, counts."""


@data.command("load-demo")
@pass_ctx
def data_load_demo(ctx: Context) -> None:
    """Load the English chatterbot corpus (about 2,400 turn pairs in 21 niches)."""
    with ctx.db.session() as session:
        report = load_demo(session, ctx.settings)
    click.echo(f"demo data: {report.added} added, {report.duplicates} already present")


@data.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--provenance",
    type=click.Choice([p.value for p in Provenance]),
    help="Provenance of rows without a 'provenance' column. There is no default.",
)
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows and report the rest.")
@pass_ctx
def data_import(ctx: Context, file: Path, provenance: str | None, skip_invalid: bool) -> None:
    """Import a JSONL or CSV file with message, reply and optional niche, provenance."""
    try:
        with ctx.db.session() as session:
            report = import_file(
                session, file, Provenance(provenance) if provenance else None, skip_invalid
            )
    except ImportFailed as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{file.name}: {report.added} added, {report.duplicates} already present")
    for error in report.skipped:
        click.echo(f"  skipped {error}", err=True)
    if report.skipped:
        click.echo(f"{len(report.skipped)} invalid row(s) skipped", err=True)


@data.command("stats")
@pass_ctx
def data_stats(ctx: Context) -> None:
    """Examples per niche and provenance."""
    with ctx.db.session() as session:
        rows = session.execute(
            select(Example.niche, Example.provenance, func.count())
            .group_by(Example.niche, Example.provenance)
            .order_by(Example.niche)
        ).all()
    if not rows:
        click.echo("no examples yet: run `replyguard data load-demo`")
        return
    click.echo(f"{'niche':24} {'provenance':16} {'examples':>8}")
    for niche, provenance, count in rows:
        click.echo(f"{niche:24} {provenance:16} {count:>8}")


@main.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.CLIENT.value)
@click.option("--name", default="", help="Who or what the key is for.")
@pass_ctx
def keys_create(ctx: Context, role: str, name: str) -> None:
    """Create an API key and print it (it is shown once and stored only hashed)."""
    with ctx.db.session() as session:
        token, _ = create_key(session, name or role, Role(role))
    click.echo(token)


@main.group()
def models() -> None:
    """Model versions."""


@models.command("list")
@pass_ctx
def models_list(ctx: Context) -> None:
    """Every model version with its status."""
    from models.registry import versions

    with ctx.db.session() as session:
        rows = versions(session)
    if not rows:
        click.echo("no models yet: run `replyguard models train-baseline`")
    for row in rows:
        created = f"{row.created_at:%Y-%m-%d %H:%M}"
        click.echo(f"{row.version:8} generation {row.generation:<3} {row.status:10} {created}")


@models.command("train-baseline")
@pass_ctx
def models_train_baseline(ctx: Context) -> None:
    """Train generation 0 (human data only: the clean baseline) and promote it if nothing is
    in production yet."""
    version = _train_baseline(ctx)
    click.echo(f"trained {version.version} (generation 0), status {version.status}")


def _train_baseline(ctx: Context) -> Any:
    from worker.baseline import NoTrainingData
    from worker.baseline import train_baseline

    try:
        version, report = train_baseline(ctx.pipeline, CLI_ACTOR)
    except NoTrainingData as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"trained on {report.examples} examples; bank of {report.bank_size} replies; "
        f"signal weights {report.weights.as_dict()}"
    )
    return version


@models.command("promote")
@click.argument("version")
@click.option("--reason", required=True, help="Why; recorded in the audit log.")
@pass_ctx
def models_promote(ctx: Context, version: str, reason: str) -> None:
    """Make VERSION the production model (web servers switch within seconds)."""
    from models.registry import RegistryError
    from models.registry import promote

    if not reason.strip():
        raise click.ClickException("--reason must say why")
    try:
        with ctx.db.session() as session:
            promote(session, ctx.settings, version, CLI_ACTOR, reason.strip())
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{version} is now production")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--workers", default=1, show_default=True, help="gunicorn worker processes.")
@click.option("--threads", default=4, show_default=True, help="Threads per worker.")
@pass_ctx
def serve(ctx: Context, host: str, port: int, workers: int, threads: int) -> None:
    """Serve the API with gunicorn."""
    _exec_gunicorn(ctx, host, port, workers, threads)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@pass_ctx
def run(ctx: Context, host: str, port: int) -> None:
    """Everything for a first look: database, demo data, the clean baseline, a client key,
    then serve the API."""
    click.echo(f"data folder: {ctx.settings.data_dir.resolve()}")
    from models.registry import production

    with ctx.db.session() as session:
        has_examples = session.scalar(select(func.count(Example.id))) or 0
        has_model = production(session) is not None
    if not has_examples:
        with ctx.db.session() as session:
            report = load_demo(session, ctx.settings)
        click.echo(f"loaded the demo data: {report.added} examples")
    if not has_model:
        click.echo("training the clean baseline (generation 0, human data only)...")
        _train_baseline(ctx)
    with ctx.db.session() as session:
        token, _ = create_key(session, "quickstart", Role.CLIENT)
    url = f"http://{host}:{port}"
    click.echo(
        "\nReady. A client API key (shown once):\n"
        f"  export KEY={token}\n"
        "Try:\n"
        '  curl -H "Authorization: Bearer $KEY" '
        f"""-d '{{"message": "are we still on for lunch?"}}' {url}/v1/suggestions\n"""
        f"API description: {url}/openapi.json   Stop with Ctrl-C.\n"
    )
    _exec_gunicorn(ctx, host, port, workers=1, threads=4)


def _exec_gunicorn(ctx: Context, host: str, port: int, workers: int, threads: int) -> None:
    from webapp.launch import LaunchError
    from webapp.launch import gunicorn_command
    from webapp.launch import server_env

    try:
        args = gunicorn_command(host, port, workers, threads)
    except LaunchError as exc:
        raise click.ClickException(str(exc)) from None
    ctx.db.upgrade()
    sys.stdout.flush()
    os.execve(args[0], args, server_env(ctx.settings.data_dir))


def _safe_url(url: str) -> str:
    """The database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
