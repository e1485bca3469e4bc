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
@click.option("--pattern", is_flag=True, help="VALUE is a regular expression (case-insensitive).")
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


@bank.command("list")
@click.option(
    "--curation-only", is_flag=True, help="Only the curated replies and blocks, not the served set."
)
@pass_ctx
def bank_list(ctx: Context, curation_only: bool) -> None:
    """Curated replies and blocks, then the production model's served response set by intent:
    each reply's support (conversations that wrote it) and source (catalogue, mined,
    curated), as GET /v1/bank lists it."""
    from models.artifact import ArtifactError
    from models.artifact import read_bank
    from models.curation import load_curation
    from models.registry import artifact_dir
    from models.registry import production
    from models.served import served_listing

    with ctx.db.session() as session:
        curation = load_curation(session)
        row = production(session)
        target = (row.version, artifact_dir(ctx.settings, row), row.checksum) if row else None
    for item in curation.curated:
        click.echo(f"curated  {item.niche:20} {item.text}")
    for block in curation.blocks:
        click.echo(f"blocked  {block.kind:20} {block.value}")
    if not curation.curated and not curation.blocks:
        click.echo("nothing curated or blocked")
    if curation_only:
        return
    if target is None:
        click.echo("no production model yet: run `replyguard models train-baseline`")
        return
    version, path, checksum = target
    # The artifact's bank alone (no encoder, no index): the same listing as the API's.
    try:
        trained = read_bank(path, checksum)
    except ArtifactError as exc:
        raise click.ClickException(f"production model {version} cannot be read: {exc}") from None
    with ctx.db.session() as session:
        listing = served_listing(session, trained)
    count = sum(len(i.replies) for i in listing)
    click.echo(f"served by {version}: {count} replies, {len(listing)} intents (support, source)")
    for intent in listing:
        about = ", ".join(x for x in (intent.group, intent.tone) if x)
        off = " DISABLED: none of its replies is suggested" if intent.disabled else ""
        click.echo(f"{intent.intent or '(no intent)'}" + (f" ({about})" if about else "") + off)
        for reply in intent.replies:
            blocked = "  BLOCKED" if reply.blocked else ""
            click.echo(f"  {reply.support:6} {reply.source.value:9} {reply.text}{blocked}")
