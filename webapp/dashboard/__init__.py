"""The product team's dashboard: server-rendered pages under /dashboard for reviewer and
admin keys, signed in with a session cookie. The JSON API stays under /v1.

Modules: ``guard`` (sign-in state, CSRF, headers, error pages, the one answer to a
refusal), ``signin``, ``pages`` (what is shown), ``actions`` (override, rollback, start a
generation), ``curation`` (the response set's curated replies and blocks: block, lift),
``intents`` (the catalogue of intents and its edits, the served response set), and the view
models behind the pages: ``overview``, ``charts``, ``niches``, ``detail``.
"""

from __future__ import annotations

import datetime as dt

from flask import Flask

# The view modules register their routes and hooks on ``bp`` when imported.
from webapp.dashboard import actions as actions
from webapp.dashboard import curation as curation
from webapp.dashboard import formatting as formatting
from webapp.dashboard import guard as guard
from webapp.dashboard import intents as intents
from webapp.dashboard import pages as pages
from webapp.dashboard import signin as signin
from webapp.dashboard.blueprint import bp
from webapp.dashboard.secret import secret_key
from webapp.state import services

__all__ = ["bp", "init_app"]

SESSION_HOURS = 12


def init_app(app: Flask) -> None:
    """Register the dashboard; call after the app's services are set up."""
    with app.app_context():
        settings = services().settings
    app.secret_key = secret_key(settings)
    app.config.update(
        SESSION_COOKIE_NAME="replyguard_dashboard",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Only the dashboard needs the cookie; API calls never carry it.
        SESSION_COOKIE_PATH="/dashboard",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=SESSION_HOURS),
        SESSION_COOKIE_SECURE=settings.secure_cookies,
    )
    app.register_blueprint(bp)
