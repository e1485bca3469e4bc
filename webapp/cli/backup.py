"""`replyguard backup` and `restore`."""

from __future__ import annotations

from pathlib import Path

import click

from webapp.cli.base import Context
from webapp.cli.base import main
from webapp.cli.base import pass_ctx


@main.command("backup")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@pass_ctx
def backup_command(ctx: Context, folder: Path) -> None:
    """Copy the database and every model artifact it refers to into the new FOLDER, with a
    manifest of checksums (safe while the service runs)."""
    from models.backup import backup

    manifest = backup(ctx.settings, folder, show_progress=True)
    size = sum(entry["size"] for entry in manifest["files"].values())
    click.echo(
        f"backup complete in {folder}: {manifest['database']['kind']} database at schema "
        f"revision {manifest['database']['alembic_revision']}, "
        f"{manifest['counts'].get('examples', 0)} examples, {len(manifest['artifacts'])} model "
        f"artifact(s), production {manifest['production'] or 'none'}; {size / 2**20:.1f} MiB"
    )


@main.command("restore")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a database and data folder that hold data.")
@pass_ctx
def restore_command(ctx: Context, folder: Path, force: bool) -> None:
    """Restore a backup FOLDER into the database and data folder (stop the service first).
    Refuses while any process of the service runs on the data folder (naming each), a
    partial or damaged backup, and a target that holds data unless --force."""
    from core.backup import refuse_while_in_use
    from models.backup import restore

    # At once, before verifying the backup (which can take minutes); restore checks again
    # just before it changes anything.
    refuse_while_in_use(ctx.settings)
    report = restore(ctx.settings, folder, force=force, show_progress=True)
    for item in report.replaced:
        click.echo(f"replaced {item}")
    click.echo(
        f"restored {folder}: {report.examples} examples, {report.artifacts} model artifact(s), "
        f"production {report.production or 'none'}"
    )
    for generation_id in report.unfinished:
        click.echo(
            f"generation id {generation_id} was running when the backup was taken and its "
            "working files are not in backups: `replyguard generation fail "
            f"{generation_id} --reason restored`, then start a new one",
            err=True,
        )
