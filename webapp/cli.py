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

from core.actions import ActionRefused
from core.db import Database
from core.demo import load_demo
from core.ingest import IMPORTABLE
from core.ingest import import_file
from core.keys import create_key
from core.keys import list_keys
from core.keys import quickstart_keys
from core.keys import revoke_key
from core.provenance import Provenance
from core.schema import Example
from core.schema import Role
from core.settings import Settings
from core.settings import SettingsError
from core.settings import load_settings
from core.text import CURATION
from core.text import KEY_NAME
from core.text import NICHE
from core.text import REASON
from core.text import InvalidText
from core.text import TextRule
from core.text import clean_text

if TYPE_CHECKING:
    from worker.context import PipelineContext

CLI_ACTOR = "cli"


class Context:
    """Settings and database, built lazily so `--help` stays fast and side-effect free."""

    def __init__(self, data_dir: str | None) -> None:
        self._overrides = {"data_dir": data_dir} if data_dir else {}
        self._settings: Settings | None = None
        self._db: Database | None = None
        self._pipeline: PipelineContext | None = None

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
        """The encoder loads only when a command needs it."""
        from worker.context import PipelineContext

        if self._pipeline is None:
            self._pipeline = PipelineContext(self.settings, self.db, show_progress=True)
        return self._pipeline

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.settings)
            self._db.upgrade()
        return self._db


pass_ctx = click.make_pass_decorator(Context)


class TextParam(click.ParamType):
    """A text option checked by the one text validation (core.text.clean_text) of its kind,
    as the API and the dashboard check the same kind of text. Loads it stripped.

    Args:
        rule: the kind of text (core.text.REASON, KEY_NAME, ...).
    """

    name = "text"

    def __init__(self, rule: TextRule) -> None:
        self.rule = rule

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return clean_text(value, self.rule, param.name if param and param.name else "text")
        except InvalidText as exc:
            self.fail(str(exc), param, ctx)


REASON_TEXT = TextParam(REASON)


class Commands(click.Group):
    """The command line's one answer to a refused action: any :class:`ActionRefused` raised
    by any command (core/actions.py: the rules live with the actions, the message says why
    and what to do) is printed as ``Error: <message>`` with exit code 1, never a traceback.
    The API (webapp/errors.py) and the dashboard (webapp/dashboard/actions.py) answer the
    same exceptions with their HTTP status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ActionRefused as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=Commands)
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
    try:
        with ctx.db.session() as session:
            report = load_demo(session, ctx.settings, full=full)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"demo data ({ctx.settings.demo_dataset}): {report.added} added, "
        f"{report.duplicates} already present, {report.traffic} messages as incoming traffic"
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
    # A refused file (FileRefused, ImportFailed, NothingToImport) says what and where.
    with ctx.db.session() as session:
        report = import_file(
            session, file, Provenance(provenance) if provenance else None, skip_invalid
        )
    _report_file(report.notes, report.skipped)
    click.echo(f"{file.name}: {report.added} added, {report.duplicates} already present")


def _report_file(notes: list[str], skipped: list[Any]) -> None:
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
@click.option("--reason", type=REASON_TEXT, required=True, help="Why; recorded in the audit log.")
@pass_ctx
def keys_revoke(ctx: Context, key_id: int, reason: str) -> None:
    """Revoke the key KEY_ID (`keys list` shows ids); every web process refuses it within
    REPLYGUARD_KEY_CACHE_SECONDS (audited)."""
    with ctx.db.session() as session:
        row = revoke_key(session, key_id, CLI_ACTOR, reason)
        prefix, name = row.prefix, row.name
    click.echo(f"revoked key {key_id} ({prefix}..., {name})")


@main.group()
def bank() -> None:
    """The response set: curated replies and blocks (every change is audited)."""


@bank.command("add")
@click.argument("text", type=TextParam(CURATION))
@click.option("--niche", type=TextParam(NICHE), default="general", show_default=True)
@click.option("--reason", type=REASON_TEXT, required=True, help="Why; recorded in the audit log.")
@pass_ctx
def bank_add(ctx: Context, text: str, niche: str, reason: str) -> None:
    """Add TEXT as a canned reply: served within seconds, without retraining."""
    from models.curation import add_curated
    from models.response_set import ResponseSetConfig

    with ctx.db.session() as session:
        config = ResponseSetConfig.from_settings(ctx.settings)
        add_curated(session, config, text, niche, reason, CLI_ACTOR)
    click.echo(f"added {text!r} to the response set ({niche})")


@bank.command("block")
@click.argument("value", type=TextParam(CURATION))
@click.option("--pattern", is_flag=True, help="VALUE is a regular expression (case-insensitive).")
@click.option("--reason", type=REASON_TEXT, required=True, help="Why; recorded in the audit log.")
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
@pass_ctx
def bank_list(ctx: Context) -> None:
    """Curated replies and blocks."""
    from models.curation import load_curation

    with ctx.db.session() as session:
        curation = load_curation(session)
    for item in curation.curated:
        click.echo(f"curated  {item.niche:20} {item.text}")
    for block in curation.blocks:
        click.echo(f"blocked  {block.kind:20} {block.value}")
    if not curation.curated and not curation.blocks:
        click.echo("nothing curated or blocked")


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


@models.command("show")
@click.argument("version")
@pass_ctx
def models_show(ctx: Context, version: str) -> None:
    """One model version: its lineage, its training data and response set, and its
    evaluation on the benchmark (the metrics the gate compares)."""
    _show_model(ctx, version)


def _show_model(ctx: Context, version: str) -> None:
    from models.artifact import ArtifactError
    from models.artifact import read_manifest
    from models.registry import artifact_dir
    from models.registry import get_version
    from safeguards.evaluation import Evaluation

    with ctx.db.session() as session:
        row = get_version(session, version)
        path, stored = artifact_dir(ctx.settings, row), dict(row.evaluation or {})
        promoted = f", promoted {row.promoted_at:%Y-%m-%d %H:%M}" if row.promoted_at else ""
        click.echo(
            f"{row.version}: generation {row.generation}, {row.status}, parent "
            f"{row.parent or '- (the clean baseline)'}, created "
            f"{row.created_at:%Y-%m-%d %H:%M} UTC{promoted}"
        )
    try:
        training = read_manifest(path).get("training", {})
    except ArtifactError as exc:
        click.echo(f"artifact: {exc}")
        training = {}
    if training:
        provenance = ", ".join(f"{k} {v}" for k, v in training["provenance_counts"].items())
        kept = training["response_set"]
        removed = ", ".join(f"{k} {v}" for k, v in kept["removed"].items())
        click.echo(
            f"trained on {training['examples']} examples ({provenance}); response set of "
            f"{kept['served']} replies of {kept['replies']} distinct (removed: {removed})"
        )
    if "evaluation" not in stored:
        click.echo("not evaluated yet (a generation evaluates its candidate in its evaluate stage)")
        return
    evaluation = Evaluation.from_dict(stored["evaluation"])
    size = evaluation.details.get("benchmark_size", "?")
    click.echo(f"evaluation on the benchmark ({size} messages):")
    for figure in evaluation.figures.values():
        primary = " (primary)" if figure.name == evaluation.primary else ""
        direction = "higher" if figure.greater_is_better else "lower"
        click.echo(
            f"  {figure.name:28} {figure.value:8.4f}  {figure.kind:10} {direction} is better"
            f"{primary}"
        )


@models.command("train-baseline")
@pass_ctx
def models_train_baseline(ctx: Context) -> None:
    """Train generation 0 (human data only: the clean baseline), promote it if nothing is
    in production yet, and print its evaluation."""
    _train_baseline(ctx)


def _train_baseline(ctx: Context) -> None:
    from worker.baseline import train_baseline

    version, report = train_baseline(ctx.pipeline, CLI_ACTOR)
    click.echo(
        f"signal weights {report.weights.as_dict()}; answers "
        f"{report.triggering.held_out_coverage:.0%} of held-out messages "
        f"(threshold {report.triggering.threshold:.3f})"
    )
    _show_model(ctx, version.version)


@models.command("promote")
@click.argument("version")
@click.option("--reason", type=REASON_TEXT, required=True, help="Why; recorded in the audit log.")
@pass_ctx
def models_promote(ctx: Context, version: str, reason: str) -> None:
    """Make VERSION production, overriding the gate if it blocked it (audited)."""
    from worker.promotion import override

    _change_production(ctx, override, version, reason)
    click.echo(f"{version} is now production")


@models.command("rollback")
@click.argument("version")
@click.option("--reason", type=REASON_TEXT, required=True, help="Why; recorded in the audit log.")
@pass_ctx
def models_rollback(ctx: Context, version: str, reason: str) -> None:
    """Make an earlier VERSION production again (audited)."""
    from worker.promotion import rollback

    _change_production(ctx, rollback, version, reason)
    click.echo(f"rolled back: {version} is production again")


def _change_production(ctx: Context, action: Any, version: str, reason: str) -> None:
    """Run override or rollback (worker/promotion.py, where their rules are)."""
    with ctx.db.session() as session:
        action(session, ctx.settings, version, CLI_ACTOR, reason)


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
        _follow(ctx, generation_id)


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
        _follow(ctx, generation_id)


@generation.command("fail")
@click.argument("generation_id", type=int)
@click.option("--reason", type=REASON_TEXT, required=True, help="Why; recorded in the audit log.")
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
    from core.schema import Generation

    with ctx.db.session() as session:
        rows = list(session.scalars(select(Generation).order_by(Generation.number.desc())))
        if not rows:
            click.echo("no generations yet: `replyguard generation start`")
        for g in rows:
            verdict = (g.decision or {}).get("verdict") or "-"
            click.echo(
                f"id {g.id:<4} generation {g.number:<3} {g.status:8} verdict {verdict:6} "
                f"stage {g.stage or '-':12} candidate {g.candidate_version or '-'}"
            )


@generation.command("show")
@click.argument("generation_id", type=int)
@pass_ctx
def generation_show(ctx: Context, generation_id: int) -> None:
    """Stage, progress, counts, figures and the gate's decision of one generation."""
    from core.schema import Generation
    from webapp.report import describe_generation

    with ctx.db.session() as session:
        row = session.get(Generation, generation_id)
        if row is None:
            raise click.ClickException(f"no generation with id {generation_id}")
        click.echo(describe_generation(row))


def _follow(ctx: Context, generation_id: int) -> str:
    """Poll the generation, one progress bar per stage; return its final status."""
    import time

    from tqdm import tqdm

    from core.schema import Generation
    from core.schema import GenerationStatus
    from worker.pipeline import STAGES

    bars: dict[str, tqdm] = {}  # type: ignore[type-arg]
    while True:
        with ctx.db.session() as session:
            row = session.get_one(Generation, generation_id)
            stages, status, error, number = dict(row.stages), row.status, row.error, row.number
        for name in STAGES:
            record = stages.get(name)
            if record is None:
                continue
            bar = bars.get(name)
            if bar is None:
                bar = bars[name] = tqdm(
                    total=100, desc=f"{name:12}", bar_format="{desc} {bar} {n:3.0f}% {postfix}"
                )
            done = 100 if record.get("status") == "done" else int(100 * record.get("progress", 0))
            bar.update(max(0, done - bar.n))
            if record.get("status") == "done" and not bar.disable:
                bar.set_postfix_str(f"{record.get('seconds', 0):.1f} s")
                bar.close()
        if not GenerationStatus(status).active:
            for bar in bars.values():
                bar.close()
            # The number people talk about, and the id the commands take.
            click.echo(
                f"generation {number} (id {generation_id}): {status}"
                + (f" ({error})" if error else "")
            )
            return status
        time.sleep(0.5)


@main.command()
@click.option(
    "--beat", is_flag=True, help="Also run the scheduler (REPLYGUARD_GENERATION_SCHEDULE)."
)
@click.option("--loglevel", default="INFO", show_default=True)
@pass_ctx
def worker(ctx: Context, beat: bool, loglevel: str) -> None:
    """Run a Celery worker (one task at a time: start more for more throughput)."""
    from webapp.launch import server_env
    from webapp.launch import worker_command

    args = worker_command(loglevel, beat)
    sys.stdout.flush()
    os.execve(args[0], args, server_env(ctx.settings.data_dir))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option(
    "--workers",
    default=2,
    show_default=True,
    help="gunicorn worker processes (one per core: each has its own GIL and model copy).",
)
@click.option(
    "--threads",
    default=32,
    show_default=True,
    help="Threads per worker: concurrent requests share encoder passes.",
)
@click.option(
    "--access-log",
    is_flag=True,
    help="Log every request to stdout (costs about an eighth of peak throughput).",
)
@pass_ctx
def serve(ctx: Context, host: str, port: int, workers: int, threads: int, access_log: bool) -> None:
    """Serve the API with gunicorn (each request is read in full before a thread takes it,
    so slow or stalled clients cannot hold the server's threads)."""
    from webapp.launch import LaunchError
    from webapp.launch import gunicorn_command
    from webapp.launch import server_env

    try:
        args = gunicorn_command(host, port, workers, threads, access_log)
    except LaunchError as exc:
        raise click.ClickException(str(exc)) from None
    sys.stdout.flush()
    os.execve(args[0], args, server_env(ctx.settings.data_dir))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--no-generation", is_flag=True, help="Serve without running a generation first.")
@pass_ctx
def run(ctx: Context, host: str, port: int, no_generation: bool) -> None:
    """Everything on one machine: database, demo data, the clean baseline, an embedded Redis,
    a worker and the web server; then one guarded generation; then keep serving."""
    from core.logs import configure_logging
    from webapp.supervisor import run_everything

    configure_logging(ctx.settings.log_level)

    click.echo(f"data folder: {ctx.settings.data_dir.resolve()}")
    from models.registry import production

    with ctx.db.session() as session:
        has_examples = session.scalar(select(func.count(Example.id))) or 0
        has_model = production(session) is not None
    if not has_examples:
        try:
            with ctx.db.session() as session:
                report = load_demo(session, ctx.settings)
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(
            f"loaded the demo data: {report.added} examples, "
            f"{report.traffic} messages as incoming traffic"
        )
    if not has_model:
        click.echo("training the clean baseline (generation 0, human data only)...")
        _train_baseline(ctx)
    with ctx.db.session() as session:
        keys = quickstart_keys(session)
        lines = [
            _quickstart_line(role, variable, *keys[role])
            for role, variable in ((Role.CLIENT, "KEY"), (Role.REVIEWER, "REVIEWER_KEY"))
        ]
    run_everything(
        ctx.pipeline,
        host,
        port,
        "\n".join(lines),
        run_generation=not no_generation,
        follow=lambda generation_id: _follow(ctx, generation_id),
    )


def _quickstart_line(role: Role, variable: str, token: str | None, row: Any) -> str:
    """One line of `run`'s banner about a quickstart key: the token when it was made now,
    otherwise which key it is and how to replace a lost one."""
    label = f"{role.value} key"
    if token is not None:
        return f"  {label} (shown once): export {variable}={token}"
    return (
        f"  {label}: {row.prefix}... (id {row.id}), printed at this data folder's first start; "
        f"lost it? `replyguard keys revoke {row.id} --reason lost` and start again"
    )


def _safe_url(url: str) -> str:
    """The database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


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
    Refuses a partial or damaged backup, and a target that holds data unless --force."""
    from models.backup import restore

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
@click.option("--reason", type=REASON_TEXT, required=True, help="Why; recorded in the audit log.")
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


@main.command()
@click.option(
    "--policy",
    type=click.Choice(["replace", "accumulate", "guarded", "bootstrap", "ablation", "all"]),
    required=True,
    help="replace: train only on the last model's output; accumulate: keep real data, add "
    "synthetic unfiltered; guarded: the production pipeline; bootstrap: fine-tune production "
    "on its own replies to the new traffic, response set held; ablation: guarded without "
    "synthetic rows (run with every policy). all: every policy, same seed.",
)
@click.option("--generations", type=click.IntRange(1, 50), default=8, show_default=True)
@click.option(
    "--slice",
    "slice_size",
    type=click.IntRange(1),
    default=None,
    help="Incoming messages that arrive and are labelled per generation, each generation a "
    "new slice. Default: the traffic shared evenly among the generations.",
)
@click.option(
    "--fresh-human",
    type=click.IntRange(0),
    default=None,
    help="Messages of each slice that also arrive with their user's reply, as human "
    "examples, for every policy. Default: a fifth of the slice for guarded and ablation, "
    "none for the others.",
)
@click.option(
    "--data",
    default="demo",
    show_default=True,
    help="demo, or a JSONL or CSV file of message, reply, niche (human examples), read as "
    "`replyguard data import` reads it.",
)
@click.option(
    "--skip-invalid", is_flag=True, help="With --data FILE: use the valid rows, report the rest."
)
@click.option("--seed", type=int, default=13, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
def simulate(
    policy: str,
    generations: int,
    slice_size: int | None,
    fresh_human: int | None,
    data: str,
    skip_invalid: bool,
    seed: int,
    out: Path,
) -> None:
    """The collapse experiment: the self-consuming loop, offline, in this process.

    The run is written to a hidden folder beside OUT and renamed to OUT when it has finished:
    OUT holds a complete run or nothing, and a failed run can be started again as it was."""
    import shutil
    import tempfile

    from models.encoder import Encoder
    from worker.baseline import NoTrainingData
    from worker.simulation import ABLATION
    from worker.simulation import FRESH_BY_DEFAULT
    from worker.simulation import POLICIES
    from worker.simulation import Plan
    from worker.simulation import default_slice
    from worker.simulation import run_simulation
    from worker.simulation import simulation_rows
    from worker.simulation import traffic_order
    from worker.simulation import write_report

    if out.exists() and not out.is_dir():
        raise click.ClickException(f"{out} is a file: give a new folder for the run")
    if out.exists() and any(out.iterdir()):
        raise click.ClickException(f"{out} is not empty: give a new folder for the run")
    if data != "demo" and not Path(data).is_file():
        raise click.ClickException(
            f"--data {data}: no such file (give demo, or a JSONL or CSV file)"
        )
    base = load_settings({"seed": seed})
    rows, read = simulation_rows(data, base, skip_invalid)
    if read is not None:
        _report_file(read.notes, read.skipped)
    policies = list(POLICIES) if policy == "all" else [policy]
    if ABLATION not in policies:
        policies.append(ABLATION)
    traffic = len(traffic_order(rows, base)[1])
    slice_size = slice_size or default_slice(traffic, generations)
    fresh = {
        p: fresh_human
        if fresh_human is not None
        else (max(slice_size // 5, 1) if p in FRESH_BY_DEFAULT else 0)
        for p in policies
    }
    plan = Plan(generations, slice_size, fresh)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        encoder = Encoder.from_settings(base.with_overrides(data_dir=work / "cache"))
        results = run_simulation(policies, plan, rows, base, encoder, work, click.echo)  # type: ignore[arg-type]
        command = (
            f"replyguard simulate --policy {policy} --generations {generations} "
            f"--slice {slice_size}"
            f"{f' --fresh-human {fresh_human}' if fresh_human is not None else ''} --data {data}"
            f"{' --skip-invalid' if skip_invalid else ''} --seed {seed} --out {out}"
        )
        written = write_report(results, work, command, plan)
        if out.exists():
            out.rmdir()  # empty: checked above
        work.rename(out)
    except (NoTrainingData, ActionRefused, ValueError) as exc:
        # What the data cannot support (too few examples for a benchmark, too little traffic
        # for the slices, no human rows left to mix) surfaces as these, with a message that
        # says so; nothing is kept.
        raise click.ClickException(
            f"the simulation stopped, nothing was written: {exc} (is --data large enough? "
            "the demo has about 5,000 pairs in 36 niches)"
        ) from None
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    for path in written:
        click.echo(f"wrote {out / path.relative_to(work)}")
