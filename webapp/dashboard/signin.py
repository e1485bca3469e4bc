"""Signing in with a reviewer or admin API key, and signing out."""

from __future__ import annotations

from typing import Any

from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for

from core.keys import find_key
from webapp.auth import STAFF
from webapp.auth import Caller
from webapp.dashboard.blueprint import bp
from webapp.dashboard.guard import sign_in_session
from webapp.limits import sign_in_limit
from webapp.state import services

CLIENT_REFUSED = (
    "Client keys call the suggestions API and cannot sign in to the dashboard. Sign in with "
    "a reviewer or admin key (an admin creates one with "
    "`replyguard keys create --role reviewer --name <you>`)."
)
UNKNOWN_KEY = "This key is unknown or has been revoked. Check that you pasted all of it."


@bp.route("/sign-in", methods=["GET", "POST"])
@sign_in_limit
def sign_in() -> Any:
    target = _safe_next(request.values.get("next", ""))
    if request.method == "GET":
        if g.get("dashboard_caller") is not None:
            return redirect(target, code=303)
        return render_template("dashboard/sign_in.html", next=target)
    token = request.form.get("api_key", "").strip()
    if not token:
        return _refused(400, "Paste your API key to sign in.", target)
    with services().db.session() as db:
        row = find_key(db, token)
        caller = Caller(row.id, row.name, row.role) if row else None
    if caller is None:
        return _refused(401, UNKNOWN_KEY, target)
    if caller.role not in STAFF:
        return _refused(403, CLIENT_REFUSED, target)
    sign_in_session(caller)
    return redirect(target, code=303)


@bp.post("/sign-out")
def sign_out() -> Any:
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("dashboard.sign_in"), code=303)


def _refused(status: int, message: str, target: str) -> tuple[str, int]:
    return render_template("dashboard/sign_in.html", next=target, error=message), status


def _safe_next(value: str) -> str:
    # Only back into the dashboard: a sign-in link must not be a way to send people elsewhere.
    if value.startswith("/dashboard") and not value.startswith("//") and "\\" not in value:
        return value
    return url_for("dashboard.overview")
