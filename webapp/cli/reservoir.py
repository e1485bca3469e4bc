"""`replyguard reservoir`: the anchor set of human examples every generation keeps."""

from __future__ import annotations

import click
from sqlalchemy import func
from sqlalchemy import select

from core.schema import Example
from webapp.cli.base import CLI_ACTOR
from webapp.cli.base import Context
from webapp.cli.base import main
from webapp.cli.base import pass_ctx
from webapp.cli.base import reason_option


@main.group()
def reservoir() -> None:
    """The protected human examples: the benchmark and the anchor."""


@reservoir.command("show")
@pass_ctx
def reservoir_show(ctx: Context) -> None:
    """Reservoir examples per niche and role."""
    from core.schema import ReservoirMember

    with ctx.db.session() as session:
        rows = session.execute(
            select(Example.niche, ReservoirMember.role, func.count())
            .join(ReservoirMember, ReservoirMember.example_id == Example.id)
            .group_by(Example.niche, ReservoirMember.role)
            .order_by(Example.niche)
        ).all()
    if not rows:
        click.echo("no reservoir yet: it is chosen when the clean baseline is trained")
        return
    table: dict[str, dict[str, int]] = {}
    for niche, role, count in rows:
        table.setdefault(niche, {})[role] = count
    click.echo(f"{'niche':24} {'benchmark':>9} {'anchor':>7}")
    for niche, roles in table.items():
        click.echo(f"{niche:24} {roles.get('benchmark', 0):>9} {roles.get('anchor', 0):>7}")


@reservoir.command("rebuild")
@reason_option
@click.option(
    "--include-benchmark",
    is_flag=True,
    help="Choose a new benchmark too: every earlier evaluation is recomputed on it.",
)
@pass_ctx
def reservoir_rebuild(ctx: Context, reason: str, include_benchmark: bool) -> None:
    """Choose the anchor again from today's human examples (audited)."""
    from core.reservoir import rebuild_reservoir

    with ctx.db.session() as session:
        after = rebuild_reservoir(session, ctx.settings, CLI_ACTOR, reason, include_benchmark)
    click.echo(
        f"reservoir rebuilt: {after['benchmark']} benchmark, {after['anchor']} anchor examples"
    )
