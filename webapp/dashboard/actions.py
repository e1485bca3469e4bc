"""The actions: promote over the gate (override), roll back, start a generation.

Each is a link to a page that says what will happen and asks for confirmation (and, for the
two that change production, a reason); only the POST from that page acts. The work is done
by the same functions the API and the command line use: they hold every rule of the action
(worker/promotion.py, worker/dispatch.py) and write the audit log; a refusal
(core/actions.py) is shown on the page with its HTTP status, by the dashboard's one handler
(webapp/dashboard/guard.py), on the page each view names before it acts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from sqlalchemy.orm import Session

from core.generations import active_generation
from core.generations import generation_of
from core.schema import ModelVersion
from core.text import REASON
from core.text import InvalidText
from core.text import clean_text
from models.registry import find_version
from models.registry import production
from webapp.dashboard.blueprint import bp
from webapp.dashboard.guard import RefusalPage
from webapp.dashboard.guard import current_reviewer
from webapp.dashboard.guard import error_page
from webapp.dashboard.guard import refusals_shown_on
from webapp.state import services
from worker.dispatch import queue_generation
from worker.promotion import check_override
from worker.promotion import check_rollback
from worker.promotion import override
from worker.promotion import rollback
from worker.settings import Settings

Action = Callable[[Session, Settings, str, str, str], ModelVersion]
Check = Callable[[Session, str], Any]


@bp.route("/models/<version>/promote", methods=["GET", "POST"])
def promote(version: str) -> Any:
    return _production_change(
        version,
        kind="promote",
        check=check_override,
        action=override,
        done="{version} is production now; the override and its reason are in the audit log.",
    )


@bp.route("/models/<version>/rollback", methods=["GET", "POST"])
def rollback_to(version: str) -> Any:
    return _production_change(
        version,
        kind="rollback",
        check=check_rollback,
        action=rollback,
        done="{version} is production again; the rollback and its reason are in the audit log.",
    )


@bp.route("/generations/new", methods=["GET", "POST"])
def start_generation() -> Any:
    svc = services()
    with svc.db.session() as session:
        current = production(session)
        active = active_generation(session)
        context = {"production": current.version if current else None, "active": active}
    if request.method == "GET":
        return render_template("dashboard/start.html", **context)
    refusals_shown_on(_page("dashboard/start.html", context))
    generation_id = queue_generation(
        current_app.extensions["celery"], svc.pipeline, current_reviewer().actor
    )
    flash("The generation is queued; this page follows it as it runs.", "info")
    return redirect(url_for("dashboard.generation", generation_id=generation_id), code=303)


def _production_change(version: str, kind: str, check: Check, action: Action, done: str) -> Any:
    """The confirmation page of an override or a rollback, and the action on POST.

    The rules are the action's own (worker/promotion.py): ``check`` shows a refusal before
    a reason is asked for, and the action checks again, in its transaction, on POST."""
    svc = services()
    with svc.db.session() as session:
        row = find_version(session, version)
        if row is None:
            return error_page(404, "No such version", f"There is no model version {version!r}.")
        current = production(session)
        generation = generation_of(session, version)
        context: dict[str, Any] = {
            "kind": kind,
            "version": row,
            "production": current.version if current else None,
            "generation": generation,
            "reason": request.form.get("reason", ""),
            "reason_max_chars": REASON.max_chars,
        }
    # Refused already: the page says so instead of asking for a reason. In a session of its
    # own, so that the rows above stay readable for the page after its rollback.
    refusals_shown_on(
        lambda message, status: (
            render_template("dashboard/confirm.html", refused=f"{message}.", **context),
            status,
        )
    )
    with svc.db.session() as session:
        check(session, version)
    if request.method == "GET":
        return render_template("dashboard/confirm.html", **context)
    try:
        reason = clean_text(request.form.get("reason", ""), REASON, "reason")
    except InvalidText as exc:
        return render_template("dashboard/confirm.html", error=str(exc), **context), 400
    refusals_shown_on(_page("dashboard/confirm.html", context))
    with svc.db.session() as session:
        action(session, svc.settings, version, current_reviewer().actor, reason)
    flash(done.format(version=version), "success")
    return redirect(url_for("dashboard.models"), code=303)


def _page(template: str, context: dict[str, Any]) -> RefusalPage:
    """``template`` again with ``context``, a refusal's message as its error."""
    return lambda message, status: (render_template(template, error=message, **context), status)
