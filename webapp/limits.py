"""Rate limits per API key (Flask-Limiter), and per client address for dashboard sign-ins.

- Every ``/v1`` endpoint: ``rate_limit`` per API key and endpoint (Flask-Limiter's default
  limits, checked before the view runs). A request without a valid API key is not counted:
  the view refuses it with 401.
- ``POST /v1/feedback`` and ``POST /v1/examples``: their own stricter limits (decorators in
  webapp/api.py) instead of the default.
- ``POST /dashboard/sign-in``: failed attempts per client address.
- Health probes: never limited.

A request over a limit gets 429 with ``Retry-After`` (seconds) and the API's one JSON error
shape (webapp/errors.py; HTML on the dashboard).

Counts live in Redis when ``REDIS_URL`` is set (Docker compose, and ``replyguard run``, which
hands its embedded redis-server to the web server), so that every gunicorn worker and machine
shares them. Without it they live in each process's memory: ``replyguard serve`` with its 2
workers lets a key make up to twice each limit (each worker counts what it serves). When Redis
stops answering, counting goes on in memory and switches back once Redis answers again, so
that suggestions are served throughout; an error in counting is logged and lets the request
through.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from flask import Flask
from flask import Response
from flask import g
from flask import request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import parse_many
from redis.exceptions import RedisError

from core.settings import ENV_PREFIX
from core.settings import SettingsError
from webapp.auth import Caller
from webapp.auth import auth
from webapp.state import services
from worker.settings import Settings

__all__ = [
    "breach",
    "feedback_limit",
    "imports_limit",
    "init_app",
    "limiter",
    "retry_after",
    "sign_in_limit",
    "storage_uri",
]

# Seconds to connect to and to wait for Redis: past them, the request counts in memory instead
# of waiting (Celery's own publish timeout is 3 s; a limit check must not cost that much).
REDIS_TIMEOUT = 0.5


def _caller() -> Caller | None:
    """The API key sent with this request, verified as webapp/auth.py verifies it (through the
    same key cache, so the view's own check costs nothing more); None without a valid key."""
    if "rate_limit_caller" not in g:
        credentials = auth.get_auth()
        found = auth.authenticate(credentials, None) if credentials else None
        g.rate_limit_caller = found if isinstance(found, Caller) else None
    caller: Caller | None = g.rate_limit_caller
    return caller


def _api_key() -> str:
    caller = _caller()
    return f"key:{caller.key_id}" if caller else ""


def _without_key() -> bool:
    return _caller() is None


def _rate(name: str) -> Callable[[], str]:
    """The rate limit setting ``name`` of the running app, read on every request."""

    def provider() -> str:
        value: str = getattr(services().settings, name)
        return value

    return provider


class _Limiter(Limiter):
    def init_app(self, app: Flask) -> None:
        # One Limiter serves the process's app; tests build one app after another. A storage
        # that stopped answering under an earlier app says nothing about this app's storage.
        self._storage_dead = False
        super().init_app(app)


# The extension, created once without an app; init_app() binds it to the process's app.
limiter = _Limiter(
    key_func=_api_key,
    default_limits=[_rate("rate_limit")],
    default_limits_exempt_when=_without_key,
    strategy="fixed-window",
    key_prefix="replyguard",
    # Retry-After is set below, on 429 answers only; the X-RateLimit-* headers would cost
    # every request another round trip to the storage.
    headers_enabled=False,
    in_memory_fallback_enabled=True,
    swallow_errors=True,
)

# Decorators for the views with their own limits (instead of the default one). They sit
# above the authentication decorator: a request without a valid key is not counted, whatever
# the order, and the view refuses it with 401.
feedback_limit = limiter.limit(_rate("rate_limit_feedback"), exempt_when=_without_key)
imports_limit = limiter.limit(_rate("rate_limit_imports"), exempt_when=_without_key)


def _sign_in_failed(response: Response) -> bool:
    # A successful sign-in redirects (303); anything else was refused.
    return response.status_code != 303


def _sign_in_message() -> str:
    wait = _in_words(retry_after() or 1)
    return f"Too many failed sign-ins from your address. Try again in {wait}."


sign_in_limit = limiter.limit(
    _rate("rate_limit_sign_in"),
    key_func=get_remote_address,
    methods=["POST"],
    deduct_when=_sign_in_failed,
    error_message=_sign_in_message,
)


def storage_uri(settings: Settings) -> str:
    """Where counts are kept: the ``REDIS_URL`` Redis, or this process's memory.

    Celery's unix-socket form ``redis+socket://PATH`` (the embedded server's URL, passed on by
    ``replyguard run``) becomes the ``limits`` library's ``redis+unix://PATH``.
    """
    url = settings.redis_url
    if not url:
        return "memory://"
    scheme, sep, rest = url.partition("://")
    return f"redis+unix://{rest}" if scheme == "redis+socket" and sep else url


def retry_after() -> int | None:
    """Whole seconds (at least 1) until the limit this request broke lets a request through
    again, or None when no limit was broken. Should the storage fail just now, the limit's
    whole window: a client that waits that long is never refused for it again."""
    broken = limiter.current_limit
    if broken is None or not broken.breached:
        return None
    try:
        reset = broken.window.reset_time
    except RedisError:
        return broken.limit.get_expiry()
    return max(1, math.ceil(reset - time.time()))


def breach() -> tuple[str, dict[str, object]]:
    """The message and ``details`` of the API's 429 answer (webapp/errors.py): the broken
    limit as Flask-Limiter writes it ("60 per 1 minute") and the seconds to wait."""
    seconds = retry_after() or 1
    broken = limiter.current_limit
    limit = str(broken.limit) if broken else "a rate limit"
    return (
        f"rate limit exceeded: {limit} for this API key on {request.method} {request.path}; "
        f"retry in {_in_words(seconds)} (Retry-After: {seconds})",
        {"limit": limit, "retry_after_seconds": seconds},
    )


def _in_words(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{math.ceil(seconds / 60)} min"
    return f"{math.ceil(seconds / 3600)} h"


def _check(settings: Settings) -> None:
    for name in ("rate_limit", "rate_limit_feedback", "rate_limit_imports", "rate_limit_sign_in"):
        value = getattr(settings, name)
        if not value:
            continue
        try:
            parse_many(value)
        except ValueError:
            raise SettingsError(
                f"{ENV_PREFIX}{name.upper()}={value!r} is not a rate limit: give "
                "'N/second|minute|hour|day', several joined by ';' (e.g. '60/minute;5000/day'), "
                "or nothing for no limit"
            ) from None


def init_app(app: Flask, settings: Settings) -> None:
    """Count this app's requests against the limits of ``settings`` (refused at start-up with
    :class:`SettingsError` when a limit does not parse), in :func:`storage_uri`."""
    _check(settings)
    uri = storage_uri(settings)
    app.config["RATELIMIT_STORAGE_URI"] = uri
    app.config["RATELIMIT_STORAGE_OPTIONS"] = (
        {"socket_connect_timeout": REDIS_TIMEOUT, "socket_timeout": REDIS_TIMEOUT}
        if uri.startswith("redis")
        else {}
    )
    limiter.init_app(app)

    @app.after_request
    def _retry_after_header(response: Response) -> Response:
        if response.status_code == 429:
            seconds = retry_after()
            if seconds is not None:
                response.headers["Retry-After"] = str(seconds)
        return response
