"""`replyguard data`: the demo data, file imports and what the database holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from sqlalchemy import func
from sqlalchemy import select

from core.demo import load_demo
from core.ingest import IMPORTABLE
from core.ingest import ImportReport
from core.ingest import import_file
from core.provenance import Provenance
from core.schema import Example
from core.settings import SettingsError
from webapp.cli.base import Context
from webapp.cli.base import main
from webapp.cli.base import pass_ctx


@main.group()
def data() -> None:
    """Examples: load the demo corpus, import files, counts."""


@data.command("load-demo")
@click.option(
    "--full",
    is_flag=True,
    help="The whole chitchat corpus (131,354 pairs) instead of its skewed demo share.",
)
@pass_ctx
def data_load_demo(ctx: Context, full: bool) -> None:
    """Load the demo data: two-person chat (REPLYGUARD_DEMO_DATASET=chitchat, the default;
    REPLYGUARD_DEMO_PAIRS turn pairs in 35 skewed niches) or the English chatterbot corpus
    (chatterbot: about 2,300 pairs in 21 niches). A fifth of each niche's messages are kept as
    incoming traffic, replies hidden."""
    ctx.may_create = True
    try:
        with ctx.db.session() as session:
            report = load_demo(session, ctx.settings, full=full)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"demo data ({ctx.settings.demo_dataset}): {stored_counts(report, 'corpus')}, "
        f"{report.traffic} messages as incoming traffic"
    )


@data.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--provenance",
    type=click.Choice([p.value for p in IMPORTABLE]),
    help="Provenance of rows without a 'provenance' column. There is no default; synthetic "
    "examples are never imported (only a generation adds them, with their model version).",
)
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows and report the rest.")
@pass_ctx
def data_import(ctx: Context, file: Path, provenance: str | None, skip_invalid: bool) -> None:
    """Import a JSONL or CSV file with message, reply and optional niche, provenance.

    Other columns are ignored (and named). Exits non-zero when nothing could be imported."""
    ctx.may_create = True
    # A refused file (FileRefused, ImportFailed, NothingToImport) says what and where; an
    # invalid row, with this command's options to get past it (webapp.cli.base.in_cli_words).
    with ctx.db.session() as session:
        report = import_file(
            session, file, Provenance(provenance) if provenance else None, skip_invalid
        )
    report_file(report.notes, report.skipped)
    click.echo(f"{file.name}: {stored_counts(report, 'file')}")


def stored_counts(report: ImportReport, within: str) -> str:
    """What a load stored and skipped, e.g. "104878 added, 0 already present, 204 duplicate
    pairs inside the corpus skipped": rows whose pair the database held before the load, and
    rows that repeat an earlier row of the same ``within`` ("corpus", "file"), told apart."""
    counts = f"{report.added} added, {report.already_present} already present"
    if report.repeated:
        pairs = "pair" if report.repeated == 1 else "pairs"
        counts += f", {report.repeated} duplicate {pairs} inside the {within} skipped"
    return counts


def report_file(notes: list[str], skipped: list[Any]) -> None:
    """What reading a file noticed, and every row skipped with its line, on stderr."""
    for note in notes:
        click.echo(f"note: {note}", err=True)
    for error in skipped:
        click.echo(f"  skipped {error}", err=True)
    if skipped:
        click.echo(f"{len(skipped)} invalid row(s) skipped", err=True)


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
