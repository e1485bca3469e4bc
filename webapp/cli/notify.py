"""`replyguard notify`: webhook deliveries and a test delivery."""

from __future__ import annotations

import click

from webapp.cli.base import CLI_ACTOR
from webapp.cli.base import Context
from webapp.cli.base import main
from webapp.cli.base import pass_ctx


@main.group()
def notify() -> None:
    """Webhook notifications (REPLYGUARD_NOTIFY_URLS): recent deliveries, a test event."""


@notify.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--attempts", "with_attempts", is_flag=True, help="Show every attempt too.")
@pass_ctx
def notify_list(ctx: Context, limit: int, with_attempts: bool) -> None:
    """Recent deliveries, newest first: event, status, attempts, the last answer or error."""
    from core.webhooks import attempts_of
    from core.webhooks import recent

    with ctx.db.session() as session:
        rows = recent(session, limit)
        if not rows:
            click.echo("no notifications yet (REPLYGUARD_NOTIFY_URLS sets where they go)")
        for d in rows:
            answer = f"HTTP {d.last_status_code}" if d.last_status_code else "-"
            click.echo(
                f"{d.created_at:%Y-%m-%d %H:%M:%S} {d.event:20} {d.status:9} "
                f"attempts {d.attempts:<2} {answer:8} {d.url} {d.delivery_id}"
                + (f"\n    {d.last_error}" if d.last_error else "")
            )
            for a in attempts_of(session, d.id) if with_attempts else []:
                click.echo(
                    f"    attempt {a.attempt} at {a.started_at:%H:%M:%S}: "
                    + (f"HTTP {a.status_code}" if a.status_code else "no answer")
                    + (f" {a.error}" if a.error else "")
                )


@notify.command("test")
@pass_ctx
def notify_test(ctx: Context) -> None:
    """Send a signed test event (ping) to every URL now, once, and print each answer."""
    from core.webhooks import urls
    from worker.notify import send_test

    if not urls(ctx.settings):
        raise click.ClickException(
            "no webhook URL: set REPLYGUARD_NOTIFY_URLS and REPLYGUARD_NOTIFY_SECRET"
        )
    results = send_test(ctx.db, ctx.settings, CLI_ACTOR)
    for url, outcome in results:
        answer = f"HTTP {outcome.status_code}" if outcome.status_code else "no answer"
        click.echo(
            f"{url}: {outcome.status} ({answer})" + (f": {outcome.error}" if outcome.error else "")
        )
    failed = sum(outcome.status != "delivered" for _, outcome in results)
    if failed:
        raise click.ClickException(f"{failed} of {len(results)} test notification(s) failed")
