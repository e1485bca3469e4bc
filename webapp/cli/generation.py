"""`replyguard generation`: start, follow, resume, fail and inspect generations."""

from __future__ import annotations

from collections.abc import Callable

import click

from webapp.cli.base import CLI_ACTOR
from webapp.cli.base import Context
from webapp.cli.base import main
from webapp.cli.base import pass_ctx
from webapp.cli.base import reason_option


@main.group()
def generation() -> None:
    """Retraining generations (run by Celery workers)."""


@generation.command("start")
@click.option("--wait", is_flag=True, help="Follow it with a progress bar per stage.")
@pass_ctx
def generation_start(ctx: Context, wait: bool) -> None:
    """Queue the next generation; a worker (`replyguard worker`) runs it."""
    from worker.celery_app import sender
    from worker.dispatch import queue_generation

    generation_id = queue_generation(sender(ctx.settings), ctx.pipeline, CLI_ACTOR)
    click.echo(f"generation queued: id {generation_id}")
    if wait:
        follow(ctx, generation_id)


@generation.command("resume")
@click.argument("generation_id", type=int)
@click.option("--wait", is_flag=True, help="Follow it with a progress bar per stage.")
@pass_ctx
def generation_resume(ctx: Context, generation_id: int, wait: bool) -> None:
    """Queue a failed or interrupted generation again from the stage it stopped in."""
    from worker.celery_app import sender
    from worker.dispatch import queue_resume

    stage = queue_resume(sender(ctx.settings), ctx.pipeline, generation_id, CLI_ACTOR)
    click.echo(f"generation {generation_id} resumes at {stage}")
    if wait:
        follow(ctx, generation_id)


@generation.command("fail")
@click.argument("generation_id", type=int)
@reason_option
@pass_ctx
def generation_fail(ctx: Context, generation_id: int, reason: str) -> None:
    """Give up on a generation whose worker died (production is untouched)."""
    from worker.pipeline import mark_failed

    mark_failed(ctx.pipeline, generation_id, reason)
    click.echo(f"generation {generation_id} marked failed")


@generation.command("list")
@pass_ctx
def generation_list(ctx: Context) -> None:
    """Every generation, newest first."""
    from core.generations import newest_first

    with ctx.db.session() as session:
        rows = newest_first(session)
        if not rows:
            click.echo("no generations yet: `replyguard generation start`")
        for g in rows:
            verdict = (g.decision or {}).get("verdict") or "-"
            click.echo(
                f"id {g.id:<4} generation {g.number:<3} {g.status:8} verdict {verdict:6} "
                f"stage {g.stage or '-':12} candidate {g.candidate_version or '-'}"
            )


@generation.command("show")
@click.argument("generation_id", type=int, required=False)
@pass_ctx
def generation_show(ctx: Context, generation_id: int | None) -> None:
    """Stage, progress, counts, metrics and the gate's decision of one generation (by its id,
    as `generation list` shows it; without one, the latest)."""
    from core.generations import get_generation
    from core.generations import latest_generation
    from webapp.report import describe_generation

    with ctx.db.session() as session:
        if generation_id is None:
            row = latest_generation(session)
            if row is None:
                raise click.ClickException("no generations yet: `replyguard generation start`")
        else:
            # An unknown id: GenerationNotFound, said with its hint by webapp/cli/base.py.
            row = get_generation(session, generation_id)
        click.echo(describe_generation(row))


def follow(ctx: Context, generation_id: int, check: Callable[[], None] | None = None) -> str:
    """Poll the generation, one progress line per stage (core.progress: a bar on a terminal,
    plain lines in a file), print its report when it ends; return its final status.
    ``check`` is called at every poll and may raise to stop following (`replyguard run`'s
    stop signal)."""
    import time

    from core.generations import get_generation
    from core.progress import Progress
    from core.schema import GenerationStatus
    from webapp.report import describe_generation
    from worker.pipeline import PIPELINE
    from worker.pipeline import STAGES

    bars: dict[str, Progress] = {}
    try:
        while True:
            if check is not None:
                check()
            with ctx.db.session() as session:
                row = get_generation(session, generation_id)
                stages, status, number = dict(row.stages), row.status, row.number
            for index, name in enumerate(STAGES, start=1):
                record = stages.get(name)
                if record is None:
                    continue
                bar = bars.get(name)
                if bar is None:
                    # Which generation, which of its stages, and what the stage does; the
                    # count is the share of the stage done, as the worker records it.
                    label = PIPELINE[name].label
                    bar = bars[name] = Progress(
                        f"generation {number}, stage {index}/{len(STAGES)} {name} "
                        f"({label[:1].lower()}{label[1:]})",
                        100,
                    )
                done = record.get("status") == "done"
                bar.advance_to(100 if done else int(100 * record.get("progress", 0)))
                if done:
                    bar.close(f"in {record.get('seconds', 0):.1f} s")
            if not GenerationStatus(status).active:
                for bar in bars.values():
                    bar.close(f"({status})")
                # Its report: number and id, status, each stage's counts, every metric and
                # the gate's decision (what `generation show` prints).
                with ctx.db.session() as session:
                    click.echo(describe_generation(get_generation(session, generation_id)))
                return status
            time.sleep(0.5)
    finally:
        # Stopped (Ctrl-C, `run`'s stop signal): the open bar ends its line before what is
        # printed next.
        for bar in bars.values():
            bar.close("(stopped following)")
