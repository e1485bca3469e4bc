"""Notifications: the events, their payload, and their delivery by a Celery worker.

Events (``REPLYGUARD_NOTIFY_EVENTS`` chooses which are sent):

- ``generation.blocked``, ``generation.warned``, ``generation.failed`` (and, to opt in to,
  ``generation.passed``): a generation ended so;
- ``production.override``, ``production.rollback``: a person changed the production model;
- ``ping``: ``replyguard notify test``.

The code that ends a generation or changes production calls :func:`when_generation_ends` or
:func:`when_production_changes` inside its transaction. The payload is built from the final
state when that transaction commits, and its deliveries are written in the same transaction
(a change that is rolled back notifies nobody; a committed one always has its deliveries on
record). After the commit each delivery is queued as a task; the HTTP request is made by a
worker, never by the web request or command that made the change. When Redis cannot be
reached the deliveries are recorded as failed ("not queued") and the change itself stands.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from celery import shared_task
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import webhooks
from core.db import Database
from core.generations import generation_of
from core.generations import get_generation
from core.schema import AuditEntry
from core.schema import DeliveryStatus
from core.schema import Generation
from core.schema import GenerationStatus
from models.registry import production
from worker.broker import NOTIFICATIONS_QUEUE
from worker.broker import NOTIFY_TASK
from worker.broker import ensure_broker
from worker.celery_app import pipeline_context
from worker.celery_app import sender
from worker.settings import Settings

log = logging.getLogger(__name__)

TASK = NOTIFY_TASK
# Per session: the changes to notify at commit, and the deliveries to queue after it.
_CHANGES = "replyguard.notify.changes"
_QUEUE = "replyguard.notify.queue"

Change = tuple[str, Any, Any]


def when_generation_ends(session: Session, settings: Settings, generation: Generation) -> None:
    """Call in the transaction that may end ``generation``, before its status changes: if it
    was queued or running and is blocked, warned, passed or failed when the transaction
    commits, its event is sent. (A generation that had already ended sends nothing again.)"""
    if webhooks.urls(settings) and GenerationStatus(generation.status).active:
        _changes(session, settings).append(("generation", generation.id, None))


def when_production_changes(session: Session, settings: Settings, kind: str, version: str) -> None:
    """Call in the transaction of an override or a rollback (``kind``) that made ``version``
    production; ``production.<kind>`` is sent when it commits."""
    if webhooks.urls(settings):
        _changes(session, settings).append(("production", kind, version))


def _changes(session: Session, settings: Settings) -> list[Change]:
    if _CHANGES not in session.info:
        session.info[_CHANGES] = []
        session.info[_QUEUE] = []
        session.info["replyguard.settings"] = settings
        event.listen(session, "before_commit", _record)
        event.listen(session, "after_commit", _queue_after_commit)
        event.listen(session, "after_rollback", _forget)
    changes: list[Change] = session.info[_CHANGES]
    return changes


def _record(session: Session) -> None:
    """Before commit, in the transaction: build each event from the final state and write
    its deliveries."""
    settings: Settings = session.info["replyguard.settings"]
    changes: list[Change] = session.info[_CHANGES]
    session.info[_CHANGES] = []
    for kind, first, second in changes:
        built = (
            _generation_event(session, settings, first)
            if kind == "generation"
            else _production_event(session, settings, first, second)
        )
        if built is not None:
            name, data = built
            deliveries = webhooks.record(session, settings, name, data)
            pending = [d.id for d in deliveries if d.status == DeliveryStatus.PENDING.value]
            session.info[_QUEUE] += pending


def _queue_after_commit(session: Session) -> None:
    pks: list[int] = session.info[_QUEUE]
    session.info[_QUEUE] = []
    if pks:
        queue(session.info["replyguard.settings"], session.get_bind(), pks)


def _forget(session: Session) -> None:
    session.info[_CHANGES] = []
    session.info[_QUEUE] = []


def queue(settings: Settings, bind: Any, pks: list[int]) -> None:
    """Queue a delivery task for each delivery id; those that cannot be queued (Redis down)
    are recorded as failed. Never raises for a queue or database problem: the change that
    is notified has been committed already and must stand."""
    app = sender(settings)
    sent = 0
    try:
        ensure_broker(app, settings)
        for pk in pks:
            # No result is kept: waiting on the result backend would block for its reconnect
            # retries (20 s) when Redis is down.
            # On the notifications queue, never the generations' (worker/broker.py).
            app.send_task(
                TASK, args=[pk], queue=NOTIFICATIONS_QUEUE, retry=False, ignore_result=True
            )
            sent += 1
    except Exception as exc:
        # Whatever went wrong (kombu's OperationalError when Redis is down, or anything else),
        # the change being notified is committed and must stand: record, log, go on.
        if isinstance(exc, OperationalError | RedisError | OSError):
            reason = f"the task queue (Redis) is unreachable ({type(exc).__name__})"
        else:
            reason = f"queuing failed ({type(exc).__name__}: {exc})"
        log.error("webhook deliveries %s %s", pks[sent:], reason)
        try:
            with Session(bind) as session, session.begin():
                webhooks.not_queued(session, pks[sent:], reason)
        except Exception:
            log.exception("could not record that webhook deliveries %s were not queued", pks)
    finally:
        app.close()


# Routed to NOTIFICATIONS_QUEUE by the task_routes of every app (worker/broker.py); a
# retry goes back to the queue it came from.
@shared_task(bind=True, name=TASK, acks_late=True, max_retries=None, ignore_result=True)
def deliver(self: Any, delivery_pk: int) -> str:
    """One attempt; on a failure that may pass, the same task again after the backoff, on
    the same queue. An attempt lasts at most ``notify_timeout_seconds`` (core/webhooks.py
    post)."""
    ctx = pipeline_context()
    outcome = webhooks.attempt(ctx.db, ctx.settings, delivery_pk)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


def deliver_now(
    db: Database,
    settings: Settings,
    delivery_pk: int,
    sleep: Callable[[float], None] = time.sleep,
) -> list[webhooks.Outcome]:
    """Every attempt of a delivery in this process, waiting the backoff between them (what
    the task does through the queue); returns the outcomes in order."""
    outcomes = [webhooks.attempt(db, settings, delivery_pk)]
    while outcomes[-1].retry_in is not None:
        sleep(outcomes[-1].retry_in)
        outcomes.append(webhooks.attempt(db, settings, delivery_pk))
    return outcomes


def send_test(db: Database, settings: Settings, actor: str) -> list[tuple[str, webhooks.Outcome]]:
    """``replyguard notify test``: a signed ``ping`` to every URL, one attempt each, from this
    process; returns (url, outcome) pairs. Empty when no URL is configured."""
    data = {
        "message": "a test notification from ReplyGuard",
        "actor": actor,
        "url": f"{_base(settings)}/dashboard/",
    }
    with db.session() as session:
        deliveries = webhooks.record(session, settings, webhooks.PING, data)
        rows = [(d.id, d.url) for d in deliveries]
    return [(url, webhooks.attempt(db, settings, pk, last=True)) for pk, url in rows]


# ---------------------------------------------------------------------------------------
# Payloads


def _generation_event(
    session: Session, settings: Settings, generation_id: int
) -> tuple[str, dict[str, Any]] | None:
    generation = get_generation(session, generation_id)
    if GenerationStatus(generation.status).active:
        return None
    return f"generation.{generation.status}", {
        **_generation_fields(session, generation),
        "url": f"{_base(settings)}/dashboard/generations/{generation.id}",
    }


def _production_event(
    session: Session, settings: Settings, kind: str, version: str
) -> tuple[str, dict[str, Any]] | None:
    """From the audit entry that the change wrote in this transaction (who, why, and the
    version it replaced) and the generation whose candidate ``version`` was, if any."""
    entry = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.action == f"model.{kind}", AuditEntry.target == version)
        .order_by(AuditEntry.id.desc())
        .limit(1)
    ).first()
    if entry is None:
        return None
    generation = generation_of(session, version)
    fields: dict[str, Any] = {"generation": None, "decision": None, "models": {}}
    if generation is not None:
        fields = _generation_fields(session, generation)
    models: dict[str, Any] = fields["models"]
    models.update(production=version, previous=(entry.details or {}).get("previous"))
    return f"production.{kind}", {
        **fields,
        "change": {
            "kind": kind,
            "actor": entry.actor,
            "reason": entry.reason,
            "at": entry.at.isoformat(),
        },
        "url": f"{_base(settings)}/dashboard/models",
    }


def _generation_fields(session: Session, generation: Generation) -> dict[str, Any]:
    decision = generation.decision or {}
    current = production(session)
    return {
        "generation": {
            "id": generation.id,
            "number": generation.number,
            "status": generation.status,
            "stage": generation.stage,
            "error": generation.error,
            "requested_by": generation.requested_by,
            "finished_at": generation.finished_at.isoformat() if generation.finished_at else None,
        },
        "decision": (
            {"verdict": decision.get("verdict"), "reasons": list(decision.get("reasons", []))}
            if decision
            else None
        ),
        "models": {
            "production": current.version if current else None,
            "candidate": generation.candidate_version,
            "parent": generation.parent_version,
        },
    }


def _base(settings: Settings) -> str:
    return settings.public_url.rstrip("/")
