"""What every command shares: the lazily built context (settings, database, pipeline),
text options checked by the one text validation, and the `replyguard` group with its one
answer to a refused action."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import click
from sqlalchemy.engine import make_url

from core.actions import ActionRefused
from core.db import Database
from core.ingest import ImportFailed
from core.settings import SettingsError
from core.text import REASON
from core.text import InvalidText
from core.text import TextRule
from core.text import clean_text
from worker.notify import set_queuer
from worker.settings import Settings
from worker.settings import load_settings

if TYPE_CHECKING:
    from worker.context import PipelineContext


CLI_ACTOR = "cli"


class Context:
    """The settings and the runtime (worker.context.PipelineContext: the migrated database,
    the encoder on first use), built lazily so `--help` stays fast and side-effect free."""

    def __init__(self, data_dir: str | None) -> None:
        self._overrides = {"data_dir": data_dir} if data_dir else {}
        self._settings: Settings | None = None
        self._pipeline: PipelineContext | None = None
        # Only the commands that set a data folder up (run, db upgrade, data import and
        # load-demo) may create its database; any other command run in the wrong folder would
        # leave an empty one behind and answer "no models yet".
        self.may_create = False
        # How the running command frames a refusal, "{}" being the refusal as
        # :func:`in_cli_words` says it: `simulate` says its run stopped and nothing was kept.
        self.refusal_frame = "{}"

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
        """The encoder loads only when a command needs it.

        The command's log lines, with the libraries' warnings and log lines (the encoder's
        export, training), go to ``<data folder>/logs/cli.log``, not to the console: the
        console has the command's own sentences and progress lines. A command that set up
        logging already (`run`, into run.log) keeps it."""
        from core.logs import configure_logging
        from core.logs import is_configured
        from worker.context import PipelineContext

        if self._pipeline is None:
            self._refuse_a_missing_database()
            if not is_configured():
                try:
                    configure_logging(
                        self.settings.log_level, path=self.settings.data_dir / "logs" / "cli.log"
                    )
                except SettingsError as exc:
                    raise click.ClickException(str(exc)) from None
            self._pipeline = PipelineContext.from_settings(self.settings, show_progress=True)
        return self._pipeline

    def _refuse_a_missing_database(self) -> None:
        url = make_url(self.settings.database)
        if self.may_create or url.get_backend_name() != "sqlite" or not url.database:
            return
        if not Path(url.database).exists():
            raise click.ClickException(
                f"no ReplyGuard data in {self.settings.data_dir.resolve()} (no database there): "
                "run this from the folder that holds the data folder, or name it with "
                "--data-dir or REPLYGUARD_DATA_DIR; `replyguard run` or `replyguard db upgrade` "
                "sets up a new one"
            )

    @property
    def db(self) -> Database:
        """The pipeline's database, migrated when first opened."""
        return self.pipeline.db


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
# Every command that changes state asks why, checked like the API's and the dashboard's reasons.
reason_option = click.option(
    "--reason", type=REASON_TEXT, required=True, help="Why; recorded in the audit log."
)


class Commands(click.Group):
    """The command line's one answer to a refused action: any :class:`ActionRefused` raised
    by any command (core/actions.py: the rules live with the actions, the message says why
    and what to do) is printed as ``Error: <message>`` with exit code 1, never a traceback,
    with the command line's hints (:func:`in_cli_words`) and, inside a command that framed
    its refusals (:attr:`Context.refusal_frame`), in that frame. The API (webapp/errors.py)
    and the dashboard (webapp/dashboard/guard.py) answer the same exceptions with their HTTP
    status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ActionRefused as exc:
            frame = ctx.obj.refusal_frame if isinstance(ctx.obj, Context) else "{}"
            raise click.ClickException(frame.format(in_cli_words(exc))) from None


def in_cli_words(error: ActionRefused) -> str:
    """The message the command line prints for a refusal (after ``Error:``): the refusal's
    own, then the command line's hints, in the words of its options and commands."""
    # Imported here, not at the top: loading the database schema would slow every
    # command's --help, and a command that raised this has loaded it already.
    from core.generations import GenerationNotFound

    message = str(error)
    if isinstance(error, ImportFailed):
        # `data import` and `simulate --data` take both options.
        hints = ["Fix the rows, or pass --skip-invalid to use the valid rows only."]
        if error.missing_provenance:
            hints.insert(
                0,
                "Rows without a 'provenance' column: pass --provenance human (or human_selected).",
            )
        return "\n".join([message, *hints])
    if isinstance(error, GenerationNotFound):
        return f"{message}; `replyguard generation list` shows them"
    return message


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
    # A command that ends a generation or changes production notifies as the web and worker
    # processes do (their queuer is set by worker.celery_app.celery_init_app).
    set_queuer(_queue_deliveries)


def _queue_deliveries(settings: Settings, delivery_ids: Sequence[int]) -> None:
    """The command line's queuer (worker/notify.py): Celery's, imported only when a command
    queues a delivery, so that the others (and ``--help``) never load Celery."""
    from worker.celery_app import queue_deliveries

    queue_deliveries(settings, delivery_ids)
