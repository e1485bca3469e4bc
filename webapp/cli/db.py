"""`replyguard db`: the database's schema migrations."""

from __future__ import annotations

import click

from webapp.cli.base import Context
from webapp.cli.base import main
from webapp.cli.base import pass_ctx


@main.group()
def db() -> None:
    """The database."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Create or migrate the schema to the newest version."""
    ctx.may_create = True
    ctx.db.upgrade()
    click.echo(f"database ready: {_safe_url(ctx.settings.database)}")


def _safe_url(url: str) -> str:
    """The database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
