"""Webhook deliveries: the signed body, one HTTP attempt, and the record of every attempt.

A delivery is one event for one URL. Its JSON body is built once, stored, and sent as the
same bytes on every attempt, signed with HMAC-SHA256 over those bytes with the shared secret
(``X-ReplyGuard-Signature: sha256=<hex>``, the scheme of GitHub's webhooks). Which events
exist and when they are sent is worker/notify.py; this module does not know Celery.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import http.client
import json
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import Database
from core.schema import DeliveryStatus
from core.schema import WebhookAttempt
from core.schema import WebhookDelivery
from core.settings import CoreSettings

SIGNATURE_HEADER = "X-ReplyGuard-Signature"
# The test event: sent whatever notify_events says.
PING = "ping"
USER_AGENT = "ReplyGuard-Webhook/1"
# Answers that may succeed when sent again; any other non-2xx answer is final (a receiver
# that refuses the signature or the body will refuse it again).
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# How much of a failed answer's body is kept in the record.
ERROR_BODY_CHARS = 200
# The most of an answer's body an attempt reads: enough for ERROR_BODY_CHARS of any text.
# A receiver's body is never needed beyond that (a 2xx answer's is not read at all), and a
# 300 MB error page once took a worker to 1 GB. The status line and headers are bounded by
# http.client itself (64 KiB a line, 100 headers).
ANSWER_BYTES_MAX = 16 * 1024


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for ``body``: ``"sha256=" + hex HMAC-SHA256``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, secret: str, header: str) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    return hmac.compare_digest(sign(body, secret), header)


def urls(settings: CoreSettings) -> list[str]:
    """The configured webhook URLs (``notify_urls``: separated by spaces or commas)."""
    return [u for u in re.split(r"[\s,]+", settings.notify_urls) if u]


def events(settings: CoreSettings) -> set[str]:
    """The event types that are sent (``notify_events``)."""
    return {e.strip() for e in settings.notify_events.split(",") if e.strip()}


def configuration_error(settings: CoreSettings, url: str) -> str:
    """Why nothing can be sent to ``url`` with these settings; empty when it can."""
    if not settings.notify_secret:
        return "REPLYGUARD_NOTIFY_SECRET is empty: notifications are never sent unsigned"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"{url!r} is not an http(s) URL (REPLYGUARD_NOTIFY_URLS)"
    return ""


def record(
    session: Session, settings: CoreSettings, event: str, data: Mapping[str, Any]
) -> list[WebhookDelivery]:
    """Add one delivery of ``event`` per configured URL to the caller's transaction and
    return them (flushed: their ids are set), pending; none when the event is not in
    ``notify_events`` (``ping`` always is) or no URL is set. A URL that cannot be used (no secret, not http) gets
    a delivery that failed at once, so that `replyguard notify list` shows why.

    The body is ``{"delivery_id", "event", "created_at", **data}`` as JSON.
    """
    if event != PING and event not in events(settings):
        return []
    deliveries = []
    for url in urls(settings):
        delivery_id = str(uuid.uuid4())
        body = {
            "delivery_id": delivery_id,
            "event": event,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            **data,
        }
        delivery = WebhookDelivery(
            delivery_id=delivery_id,
            event=event,
            url=url,
            body=json.dumps(body, ensure_ascii=False, sort_keys=True),
        )
        problem = configuration_error(settings, url)
        if problem:
            delivery.status = DeliveryStatus.FAILED.value
            delivery.last_error = problem
            delivery.finished_at = dt.datetime.now(dt.UTC)
        session.add(delivery)
        deliveries.append(delivery)
    session.flush()
    return deliveries


@dataclass(frozen=True)
class Outcome:
    """One attempt's result: ``retry_in`` is the seconds to wait before the next attempt,
    None when the delivery is finished (delivered or given up)."""

    attempt: int
    status: str
    status_code: int | None
    error: str
    retry_in: float | None


def backoff(settings: CoreSettings, attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): the backoff
    setting, doubled after each failure."""
    return float(settings.notify_backoff_seconds * 2 ** (attempt - 1))


def attempt(db: Database, settings: CoreSettings, delivery_pk: int, last: bool = False) -> Outcome:
    """Send the delivery once, record the attempt, and say what comes next.

    A 2xx answer delivers it. A connection error, a timeout or a RETRYABLE_STATUS answer is
    tried again after :func:`backoff` unless this was attempt ``notify_max_attempts`` (or
    ``last``); any other answer fails it at once. A delivery that is no longer pending is
    not sent again (a task delivered twice by the queue sends once). Raises KeyError for an
    unknown delivery.
    """
    with db.session() as session:
        delivery = session.get(WebhookDelivery, delivery_pk)
        if delivery is None:
            raise KeyError(f"no webhook delivery {delivery_pk}")
        if delivery.status != DeliveryStatus.PENDING.value:
            return Outcome(
                delivery.attempts,
                delivery.status,
                delivery.last_status_code,
                delivery.last_error,
                None,
            )
        number = delivery.attempts + 1
        url, body, event, delivery_id = (
            delivery.url,
            delivery.body.encode(),
            delivery.event,
            delivery.delivery_id,
        )
    problem = configuration_error(settings, url)
    started = dt.datetime.now(dt.UTC)
    status_code: int | None = None
    retryable = False
    if problem:
        error = problem
    else:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-ReplyGuard-Event": event,
            "X-ReplyGuard-Delivery": delivery_id,
            "X-ReplyGuard-Attempt": str(number),
            SIGNATURE_HEADER: sign(body, settings.notify_secret),
        }
        answer = post(url, body, headers, settings.notify_timeout_seconds)
        status_code = answer.status_code
        if answer.error:
            error, retryable = answer.error, True
        else:
            assert status_code is not None
            error = "" if 200 <= status_code < 300 else _http_error(status_code, answer.text)
            retryable = status_code in RETRYABLE_STATUS
    finished = dt.datetime.now(dt.UTC)
    if not error:
        status, retry_in = DeliveryStatus.DELIVERED.value, None
    elif retryable and not last and number < settings.notify_max_attempts:
        status, retry_in = DeliveryStatus.PENDING.value, backoff(settings, number)
    else:
        status, retry_in = DeliveryStatus.FAILED.value, None
    with db.session() as session:
        session.add(
            WebhookAttempt(
                delivery_id=delivery_pk,
                attempt=number,
                status_code=status_code,
                error=error,
                started_at=started,
                finished_at=finished,
            )
        )
        delivery = session.get_one(WebhookDelivery, delivery_pk)
        delivery.attempts = number
        delivery.status = status
        delivery.last_status_code = status_code
        delivery.last_error = error
        if status != DeliveryStatus.PENDING.value:
            delivery.finished_at = finished
    return Outcome(number, status, status_code, error, retry_in)


def not_queued(session: Session, delivery_pks: list[int], reason: str) -> None:
    """Mark deliveries that could not be handed to a worker as failed, saying why."""
    for pk in delivery_pks:
        delivery = session.get_one(WebhookDelivery, pk)
        delivery.status = DeliveryStatus.FAILED.value
        delivery.last_error = f"not queued: {reason}"
        delivery.finished_at = dt.datetime.now(dt.UTC)


def recent(session: Session, limit: int) -> list[WebhookDelivery]:
    """The newest deliveries first."""
    return list(
        session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit))
    )


def attempts_of(session: Session, delivery_pk: int) -> list[WebhookAttempt]:
    return list(
        session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_pk)
            .order_by(WebhookAttempt.attempt)
        )
    )


def _http_error(status_code: int, body: str) -> str:
    text = " ".join(body.split())[:ERROR_BODY_CHARS]
    return f"HTTP {status_code}" + (f": {text}" if text else "")


@dataclass(frozen=True)
class Answer:
    """What one POST got: the status (None without one), the start of the body of a non-2xx
    answer (at most ANSWER_BYTES_MAX bytes, decoded leniently), and ``error``, non-empty
    when no whole status and headers arrived in time (connection refused, reset, TLS,
    the deadline)."""

    status_code: int | None
    text: str
    error: str


def post(url: str, body: bytes, headers: Mapping[str, str], deadline_seconds: float) -> Answer:
    """POST ``body`` to ``url`` and return within ``deadline_seconds`` whatever happens.

    The deadline is for the whole exchange (connecting, sending, the answer's status and
    headers, and the part of its body that is read), not per read: a receiver that sends a
    byte every few seconds would otherwise keep a worker for as long as it likes (requests'
    timeout is per read; one such receiver held a worker for 197 s with a 10 s setting).
    A watchdog shuts the socket down at the deadline, which wakes a read blocked in the
    kernel; each socket operation also times out at the deadline. Name resolution is not
    covered (the C resolver cannot be interrupted; its own timeouts apply).

    Only a non-2xx answer's body is read, and only its first ANSWER_BYTES_MAX bytes: the
    record keeps ERROR_BODY_CHARS of it. Redirects are not followed (the signature was made
    for this URL). Never raises for a network problem: it is the answer's ``error``.

    Args:
        url: http or https (checked by :func:`configuration_error` before).
        body: the exact bytes to send.
        headers: sent as they are, with Content-Length.
        deadline_seconds: ``notify_timeout_seconds`` (default 10, core/settings.py).
    """
    deadline = time.monotonic() + deadline_seconds
    parts = urlsplit(url)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname or "",
            parts.port,
            timeout=deadline_seconds,
            context=ssl.create_default_context(),
        )
    else:
        connection = http.client.HTTPConnection(
            parts.hostname or "", parts.port, timeout=deadline_seconds
        )
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        sock = connection.sock
        if sock is not None:
            # The plain socket's shutdown, also under TLS: it wakes a blocked read at once.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    watchdog = threading.Timer(deadline_seconds, cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        try:
            connection.request("POST", target, body=body, headers=dict(headers))
            response = connection.getresponse()
            status_code = response.status
        except (OSError, http.client.HTTPException) as exc:
            if expired.is_set() or time.monotonic() >= deadline:
                return Answer(None, "", _deadline_error(deadline_seconds))
            return Answer(None, "", _network_error(exc))
        text = ""
        if not 200 <= status_code < 300:
            try:
                start = response.read(ANSWER_BYTES_MAX)
            except http.client.IncompleteRead as exc:
                # The deadline or the receiver cut the body short: keep what came.
                start = exc.partial
            except (OSError, http.client.HTTPException):
                start = b""
            text = start.decode("utf-8", errors="replace")
        return Answer(status_code, text, "")
    finally:
        watchdog.cancel()
        connection.close()


def _deadline_error(seconds: float) -> str:
    return (
        f"Timeout: no whole answer within {seconds:g} s "
        "(REPLYGUARD_NOTIFY_TIMEOUT_SECONDS, a deadline for the whole request)"
    )


def _network_error(exc: BaseException) -> str:
    # One family name for what could not reach the receiver, as `notify list` shows it.
    kind = "ConnectionError" if isinstance(exc, OSError) else "HTTPError"
    return f"{kind}: {type(exc).__name__}: {exc}"
