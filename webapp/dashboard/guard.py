"""Who is signed in, CSRF protection, security headers, HTML error pages, and the
dashboard's one answer to a refused action.

A session holds the API key's id and role, never the key itself (the cookie is signed, not
encrypted). Every request looks the key up again, so revoking a key or changing its role
signs its sessions out at once. Every POST carries the session's CSRF token in a hidden
field; a POST without it, or with another, changes nothing.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Any

from flask import Response
from flask import g
from flask import jsonify
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from core.actions import ActionRefused
from core.schema import ApiKey
from webapp.auth import STAFF
from webapp.auth import Caller
from webapp.dashboard.blueprint import bp
from webapp.state import services

log = logging.getLogger(__name__)

KEY_ID = "key_id"
ROLE = "role"
CSRF = "csrf"
CSRF_FIELD = "csrf_token"
# Reachable without signing in.
PUBLIC = frozenset({"dashboard.sign_in", "dashboard.static"})
# Answer JSON rather than HTML (polled by the page's script).
JSON_ENDPOINTS = frozenset({"dashboard.progress"})

# Scripts and styles come only from our own static folder: no inline script can run even if
# some text slipped through escaping. Chart data sits in <script type="application/json">
# blocks, which are data, not code.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

CSRF_MESSAGE = (
    "This form's security token (CSRF) was missing or out of date, so nothing was done. "
    "Go back, reload the page and try again."
)


def csrf_token() -> str:
    """The session's CSRF token, created on first use."""
    token = session.get(CSRF)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF] = token
    return token


def current_reviewer() -> Caller:
    caller = g.get("dashboard_caller")
    if not isinstance(caller, Caller):
        raise RuntimeError("current_reviewer() called outside a signed-in dashboard request")
    return caller


def sign_in_session(caller: Caller) -> None:
    # A fresh session (and CSRF token) at sign-in: nothing set before it carries over.
    session.clear()
    session.permanent = True
    session[KEY_ID] = caller.key_id
    session[ROLE] = caller.role
    csrf_token()


# A page that shows a refusal: called with the message and the HTTP status, it returns the
# response (the page the form was on, again, with the message).
RefusalPage = Callable[[str, int], Any]


def error_page(status: int, title: str, message: str) -> tuple[str, int]:
    return render_template("dashboard/error.html", title=title, message=message), status


def refusals_shown_on(page: RefusalPage) -> None:
    """Name the page that answers a refusal of the action this request runs from here on:
    the one handler (below) calls it with the refusal's message and status. A view names it
    before it acts, so that the action is called as any front end calls it, without a
    ``try``; a view that names none answers a refusal with the error page."""
    g.refusal_page = page


@bp.context_processor
def _template_helpers() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "csrf_field": CSRF_FIELD}


@bp.before_request
def _guard() -> Any:
    if request.endpoint == "dashboard.static":
        return None
    g.dashboard_caller = _signed_in()
    if g.dashboard_caller is None and request.endpoint not in PUBLIC:
        if request.endpoint in JSON_ENDPOINTS:
            return jsonify(error="sign in to the dashboard first"), 401
        target = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("dashboard.sign_in", next=target), code=303)
    if request.method == "POST" and not _csrf_ok():
        log.warning("dashboard: refused a POST to %s without a valid CSRF token", request.path)
        return error_page(400, "Refused: missing security token", CSRF_MESSAGE)
    return None


def _signed_in() -> Caller | None:
    key_id = session.get(KEY_ID)
    if not isinstance(key_id, int):
        return None
    with services().db.session() as db:
        row = db.get(ApiKey, key_id)
        if (
            row is None
            or row.revoked_at is not None
            or row.role not in STAFF
            or row.role != session.get(ROLE)
        ):
            session.pop(KEY_ID, None)
            session.pop(ROLE, None)
            return None
        return Caller(row.id, row.name, row.role)


def _csrf_ok() -> bool:
    expected = session.get(CSRF)
    sent = request.form.get(CSRF_FIELD, "")
    return bool(expected) and hmac.compare_digest(str(expected), sent)


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "dashboard.static":
        # Pages show who may do what right now; a back button must not show a stale copy.
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(ActionRefused)
def _refused(error: ActionRefused) -> Any:
    # The rules of state-changing actions live with the actions (core/actions.py); this is
    # the dashboard's answer to every refusal, whichever view called the action.
    page: RefusalPage | None = g.get("refusal_page")
    if page is None:
        status = error.status
        return error_page(status, f"{status} {HTTP_STATUS_CODES.get(status, '')}", str(error))
    return page(str(error), error.status)


@bp.errorhandler(Exception)
def _error(error: Exception) -> Any:
    # The API answers errors in JSON; people reading the dashboard get a page.
    if isinstance(error, HTTPException):
        status = error.code or 500
        return error_page(status, f"{status} {error.name}", error.description or "")
    log.exception("dashboard: unhandled error")
    return error_page(
        500,
        "Something went wrong",
        "The server hit an unexpected error; the server log has the details.",
    )
