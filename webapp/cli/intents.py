"""`replyguard intents`: the catalogue of intents as reviewers made it, and their edits (the
rules live in models.intent_edits, shared with the API and the dashboard; every edit is audited)."""

from __future__ import annotations

import click

from core.text import CURATION
from webapp.cli.base import CLI_ACTOR
from webapp.cli.base import Context
from webapp.cli.base import TextParam
from webapp.cli.base import main
from webapp.cli.base import pass_ctx
from webapp.cli.base import reason_option

REPLY_TEXT = TextParam(CURATION)
# The models are imported by the commands that run, not here: `--help` stays fast (numpy and
# faiss come with models.catalogue). The tone and stance are checked by models.intent_edits.
TONES = "sympathetic, affectionate, positive, neutral, negative or humorous"


@main.group()
def intents() -> None:
    """The catalogue of intents: list, add, add a reply, rename, disable, enable (audited)."""


@intents.command("list")
@click.option("--group", default=None, help="Only this group's intents.")
@pass_ctx
def intents_list(ctx: Context, group: str | None) -> None:
    """Every intent by group: tone, stance, source, disabled or not, and its replies."""
    from models.intent_edits import load_overlay

    with ctx.db.session() as session:
        overlay = load_overlay(session)
    groups = overlay.groups()
    if group is not None and group not in groups:
        raise click.ClickException(f"no group is called {group!r}: `replyguard intents list`")
    for name, members in groups.items():
        if group is not None and name != group:
            continue
        click.echo(name)
        for state in members:
            intent = state.intent
            flags = [intent.tone.value, intent.stance.value if intent.stance else "-"]
            flags.append(state.source.value)
            if state.shipped_name not in (None, intent.name):
                flags.append(f"was {state.shipped_name}")
            if state.disabled:
                flags.append("DISABLED")
            replies = " | ".join(
                f"{r} (reviewer)" if r in state.added else r for r in intent.replies
            )
            click.echo(f"  {intent.name:28} {' '.join(flags):32} {replies}")
    for skipped in overlay.skipped:
        click.echo(
            f"edit {skipped.edit.id} ({skipped.edit.action.value} {skipped.edit.intent}) "
            f"no longer applies: {skipped.why}"
        )


@intents.command("add")
@click.argument("name")
@click.option("--group", required=True, help="The group it is listed under (snake_case).")
@click.option("--tone", required=True, help=f"How its replies sound: {TONES}.")
@click.option(
    "--stance",
    default=None,
    help="yes or no, for an intent that answers a question or proposal.",
)
@click.option(
    "--reply",
    "replies",
    multiple=True,
    required=True,
    type=REPLY_TEXT,
    help="A canonical reply; give 2 to 6 (one --reply each).",
)
@reason_option
@pass_ctx
def intents_add(
    ctx: Context,
    name: str,
    group: str,
    tone: str,
    stance: str | None,
    replies: tuple[str, ...],
    reason: str,
) -> None:
    """Add the intent NAME (snake_case) with its replies."""
    from models.intent_edits import add_intent

    with ctx.db.session() as session:
        state = add_intent(
            session,
            ctx.settings.response_set,
            name,
            group,
            tone,
            stance,
            replies,
            reason,
            CLI_ACTOR,
        )
    click.echo(f"added intent {state.name!r} to {state.intent.group!r}")


@intents.command("add-reply")
@click.argument("name")
@click.argument("reply", type=REPLY_TEXT)
@reason_option
@pass_ctx
def intents_add_reply(ctx: Context, name: str, reply: str, reason: str) -> None:
    """Add REPLY to the intent NAME."""
    from models.intent_edits import add_reply

    with ctx.db.session() as session:
        add_reply(session, ctx.settings.response_set, name, reply, reason, CLI_ACTOR)
    click.echo(f"added {reply!r} to intent {name!r}")


@intents.command("rename")
@click.argument("name")
@click.argument("new_name")
@reason_option
@pass_ctx
def intents_rename(ctx: Context, name: str, new_name: str, reason: str) -> None:
    """Rename the intent NAME to NEW_NAME."""
    from models.intent_edits import rename_intent

    with ctx.db.session() as session:
        rename_intent(session, ctx.settings.response_set, name, new_name, reason, CLI_ACTOR)
    click.echo(f"renamed intent {name!r} to {new_name!r}")


@intents.command("disable")
@click.argument("name")
@reason_option
@pass_ctx
def intents_disable(ctx: Context, name: str, reason: str) -> None:
    """Disable the intent NAME: out of the catalogue until enabled."""
    from models.intent_edits import disable_intent

    with ctx.db.session() as session:
        disable_intent(session, ctx.settings.response_set, name, reason, CLI_ACTOR)
    click.echo(f"disabled intent {name!r}")


@intents.command("enable")
@click.argument("name")
@reason_option
@pass_ctx
def intents_enable(ctx: Context, name: str, reason: str) -> None:
    """Enable the disabled intent NAME again."""
    from models.intent_edits import enable_intent

    with ctx.db.session() as session:
        enable_intent(session, ctx.settings.response_set, name, reason, CLI_ACTOR)
    click.echo(f"enabled intent {name!r}")
