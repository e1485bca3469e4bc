"""`replyguard keys`: API keys (create, list, revoke; every change audited)."""

from __future__ import annotations

import click

from core.keys import create_key
from core.keys import list_keys
from core.keys import revoke_key
from core.schema import Role
from core.text import KEY_NAME
from webapp.cli.base import CLI_ACTOR
from webapp.cli.base import Context
from webapp.cli.base import TextParam
from webapp.cli.base import main
from webapp.cli.base import pass_ctx
from webapp.cli.base import reason_option


@main.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.CLIENT.value)
@click.option("--name", type=TextParam(KEY_NAME), help="Who or what the key is for.")
@pass_ctx
def keys_create(ctx: Context, role: str, name: str | None) -> None:
    """Create an API key and print it (it is shown once and stored only hashed)."""
    with ctx.db.session() as session:
        token, _ = create_key(session, (name or "").strip() or role, Role(role), CLI_ACTOR)
    click.echo(token)


@keys.command("list")
@pass_ctx
def keys_list(ctx: Context) -> None:
    """Every API key: id, prefix, role, name, created and revoked (tokens are never stored)."""
    with ctx.db.session() as session:
        rows = list_keys(session)
        if not rows:
            click.echo("no API keys yet: `replyguard keys create --role client --name NAME`")
            return
        click.echo(
            f"{'id':>4}  {'prefix':12} {'role':9} {'created (UTC)':17} {'revoked (UTC)':17} name"
        )
        for row in rows:
            revoked = f"{row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "-"
            click.echo(
                f"{row.id:>4}  {row.prefix + '...':12} {row.role:9} "
                f"{row.created_at:%Y-%m-%d %H:%M}  {revoked:17} {row.name}"
            )


@keys.command("revoke")
@click.argument("key_id", type=int)
@reason_option
@pass_ctx
def keys_revoke(ctx: Context, key_id: int, reason: str) -> None:
    """Revoke the key KEY_ID (`keys list` shows ids); every web process refuses it within
    REPLYGUARD_KEY_CACHE_SECONDS (audited)."""
    with ctx.db.session() as session:
        row = revoke_key(session, key_id, CLI_ACTOR, reason)
        prefix, name = row.prefix, row.name
    click.echo(f"revoked key {key_id} ({prefix}..., {name})")
