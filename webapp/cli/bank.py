"""`replyguard bank`: the response set's curated replies and blocks."""

from __future__ import annotations

import click

from core.text import CURATION
from core.text import NICHE
from webapp.cli.base import CLI_ACTOR
from webapp.cli.base import Context
from webapp.cli.base import TextParam
from webapp.cli.base import main
from webapp.cli.base import pass_ctx
from webapp.cli.base import reason_option


@main.group()
def bank() -> None:
    """The response set: curated replies and blocks (every change is audited)."""


@bank.command("add")
@click.argument("text", type=TextParam(CURATION))
@click.option("--niche", type=TextParam(NICHE), default="general", show_default=True)
@reason_option
@pass_ctx
def bank_add(ctx: Context, text: str, niche: str, reason: str) -> None:
    """Add TEXT as a canned reply: served within seconds, without retraining."""
    from models.curation import add_curated

    with ctx.db.session() as session:
        add_curated(session, ctx.settings.response_set, text, niche, reason, CLI_ACTOR)
    click.echo(f"added {text!r} to the response set ({niche})")


@bank.command("block")
@click.argument("value", type=TextParam(CURATION))
@click.option(
    "--pattern",
    is_flag=True,
    help="VALUE is a case-insensitive RE2 regular expression (no backreferences or lookarounds).",
)
@reason_option
@pass_ctx
def bank_block(ctx: Context, value: str, pattern: bool, reason: str) -> None:
    """Never suggest VALUE (a reply, or with --pattern every reply it matches) again."""
    from models.curation import add_block

    with ctx.db.session() as session:
        add_block(session, "pattern" if pattern else "text", value, reason, CLI_ACTOR)
    click.echo(
        f"blocked {'pattern' if pattern else 'reply'} {value!r}: web servers stop "
        "suggesting it within seconds"
    )


@bank.command("unblock")
@click.argument("block_id", type=int, metavar="ID")
@reason_option
@pass_ctx
def bank_unblock(ctx: Context, block_id: int, reason: str) -> None:
    """Lift block ID (`replyguard bank list` shows ids): served again within seconds."""
    from models.curation import lift_block

    with ctx.db.session() as session:
        row = lift_block(session, block_id, reason, CLI_ACTOR)
        click.echo(
            f"lifted block {row.id} ({row.kind} {row.value!r}): web servers suggest what it "
            "blocked again within seconds"
        )


@bank.command("list")
@pass_ctx
def bank_list(ctx: Context) -> None:
    """Curated replies, and every block with its id (lifted ones marked)."""
    from sqlalchemy import select

    from core.schema import CuratedReply
    from core.schema import ReplyBlock

    with ctx.db.session() as session:
        curated = session.scalars(select(CuratedReply).order_by(CuratedReply.id)).all()
        blocks = session.scalars(select(ReplyBlock).order_by(ReplyBlock.id)).all()
        for item in curated:
            click.echo(f"curated  {item.niche:20} {item.text}")
        for block in blocks:
            state = (
                f"lifted {block.lifted_at:%Y-%m-%d %H:%M} by {block.lifted_by}"
                if block.lifted_at is not None
                else "in force"
            )
            click.echo(f"block {block.id:<4} {block.kind:8} {state:30} {block.value}")
        if not curated and not blocks:
            click.echo("nothing curated or blocked")
