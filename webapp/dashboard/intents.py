"""The dashboard's intents: the catalogue of intents as reviewers made it (listed by group,
each intent on a page of its own with its actions). The production model's served replies by
intent are on the response set's page (webapp/dashboard/curation.py).

Every form carries the CSRF token (webapp/dashboard/guard.py refuses a POST without it) and a
reason, checked by the one text validation as the other forms' reasons are (400 when it is
missing). The work is done by the functions the API and the command line call
(models.intent_edits): a refusal (core/actions.py) is shown on the page, with its HTTP status
(by the dashboard's one handler, webapp/dashboard/guard.py), and the form keeps what was
typed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from sqlalchemy.orm import Session

from core.text import CURATION
from core.text import REASON
from core.text import InvalidText
from core.text import clean_text
from models.catalogue import MAX_REPLIES
from models.catalogue import MIN_REPLIES
from models.catalogue import Stance
from models.catalogue import Tone
from models.intent_edits import MAX_NAME_CHARS
from models.intent_edits import IntentState
from models.intent_edits import add_intent
from models.intent_edits import add_reply
from models.intent_edits import disable_intent
from models.intent_edits import enable_intent
from models.intent_edits import load_overlay
from models.intent_edits import rename_intent
from webapp.dashboard.blueprint import bp
from webapp.dashboard.guard import current_reviewer
from webapp.dashboard.guard import error_page
from webapp.dashboard.guard import refusals_shown_on
from webapp.state import services

# An edit of one intent: (session, config, name, reason, actor, form) -> the intent after it.
Edit = Callable[[Session, Any, str, str, str, Any], IntentState]


def _form_context() -> dict[str, Any]:
    return {
        "tones": [t.value for t in Tone],
        "stances": [s.value for s in Stance],
        "min_replies": MIN_REPLIES,
        "max_replies": MAX_REPLIES,
        "name_max_chars": MAX_NAME_CHARS,
        "reply_max_chars": CURATION.max_chars,
        "reason_max_chars": REASON.max_chars,
        "form": request.form,
    }


def _list_page(error: str = "", status: int = 200) -> tuple[str, int]:
    with services().db.session() as session:
        overlay = load_overlay(session)
    page = render_template(
        "dashboard/intents.html",
        groups=overlay.groups(),
        count=len(overlay.intents),
        disabled=sum(s.disabled for s in overlay.intents),
        skipped=overlay.skipped,
        error=error,
        **_form_context(),
    )
    return page, status


def _intent_page(name: str, error: str = "", status: int = 200, action: str = "") -> Any:
    with services().db.session() as session:
        state = load_overlay(session).get(name)
    if state is None:
        return error_page(
            404,
            "No such intent",
            f"There is no intent called {name!r}. The Intents page lists every intent.",
        )
    page = render_template(
        "dashboard/intent.html", state=state, error=error, action=action, **_form_context()
    )
    return page, status


@bp.get("/intents")
def intents() -> Any:
    return _list_page()


@bp.post("/intents")
def add_intent_form() -> Any:
    """Add an intent: name, group, tone, stance, one reply per line, reason."""
    try:
        reason = _reason()
    except InvalidText as exc:
        return _list_page(str(exc), 400)
    form = request.form
    replies = [line.strip() for line in form.get("replies", "").splitlines() if line.strip()]
    svc = services()
    refusals_shown_on(_list_page)
    with svc.db.session() as session:
        state = add_intent(
            session,
            svc.settings.response_set,
            form.get("name", ""),
            form.get("group", ""),
            form.get("tone", ""),
            form.get("stance") or None,
            replies,
            reason,
            current_reviewer().actor,
        )
    flash(f"Intent {state.name!r} added; the addition and its reason are in the audit log.")
    return redirect(url_for("dashboard.intent", name=state.name), code=303)


@bp.get("/intents/<name>")
def intent(name: str) -> Any:
    return _intent_page(name)


@bp.post("/intents/<name>/replies")
def add_reply_form(name: str) -> Any:
    def edit(s: Session, config: Any, name: str, reason: str, actor: str, form: Any) -> Any:
        try:
            reply = clean_text(form.get("reply", ""), CURATION, "reply")
        except InvalidText as exc:
            raise _Invalid(str(exc)) from None
        return add_reply(s, config, name, reply, reason, actor)

    return _edit(name, "reply", edit, "Reply added to {name!r}.")


@bp.post("/intents/<name>/rename")
def rename_form(name: str) -> Any:
    def edit(s: Session, config: Any, name: str, reason: str, actor: str, form: Any) -> Any:
        return rename_intent(s, config, name, form.get("new_name", ""), reason, actor)

    return _edit(name, "rename", edit, "Renamed to {name!r}.")


@bp.post("/intents/<name>/disable")
def disable_form(name: str) -> Any:
    def edit(s: Session, config: Any, name: str, reason: str, actor: str, form: Any) -> Any:
        return disable_intent(s, config, name, reason, actor)

    return _edit(name, "disable", edit, "{name!r} is disabled.")


@bp.post("/intents/<name>/enable")
def enable_form(name: str) -> Any:
    def edit(s: Session, config: Any, name: str, reason: str, actor: str, form: Any) -> Any:
        return enable_intent(s, config, name, reason, actor)

    return _edit(name, "enable", edit, "{name!r} is enabled again.")


class _Invalid(Exception):
    """A form field the one text validation refused (a 400, as a bad reason is)."""


def _reason() -> str:
    return clean_text(request.form.get("reason", ""), REASON, "reason")


def _edit(name: str, action: str, edit: Edit, done: str) -> Any:
    """Check the reason, run ``edit`` (models.intent_edits), and show the intent's page: on
    success after a redirect with ``done``, on a refusal with its message and status."""
    svc = services()
    refusals_shown_on(lambda message, status: _intent_page(name, message, status, action))
    try:
        reason = _reason()
        with svc.db.session() as session:
            state = edit(
                session,
                svc.settings.response_set,
                name,
                reason,
                current_reviewer().actor,
                request.form,
            )
    except (InvalidText, _Invalid) as exc:
        return _intent_page(name, str(exc), 400, action)
    flash(done.format(name=state.name) + " The change and its reason are in the audit log.")
    return redirect(url_for("dashboard.intent", name=state.name), code=303)
