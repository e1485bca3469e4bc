"""Notifications: the events, their payload, and the hooks that record them.

Events (``REPLYGUARD_NOTIFY_EVENTS`` chooses which are sent):

- ``generation.blocked``, ``generation.warned``, ``generation.failed`` (and, to opt in to,
  ``generation.passed``): a generation ended so;
- ``production.override``, ``production.rollback``: a person changed the production model;
- ``ping``: ``replyguard notify test``.

The code that ends a generation or changes production calls :func:`when_generation_ends` or
:func:`when_production_changes` inside its transaction. The payload is built from the final
state when that transaction commits, and its deliveries are written in the same transaction
(a change that is rolled back notifies nobody; a committed one always has its deliveries on
record). After the commit the process's queuer (:func:`set_queuer`) queues each delivery as a
task; the HTTP request is made by a worker, never by the web request or command that made the
change. When the queue cannot be reached the deliveries are recorded as failed ("not
queued") and the change itself stands.

This module imports no task queue: the runner, the stages and promotion call its hooks, and
stay free of Celery (an import-linter contract in pyproject.toml). Celery's side, the queuer
and the delivery task, is worker/celery_app.py and worker/tasks.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import Protocol

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
from worker.settings import Settings

log = logging.getLogger(__name__)

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


class NotQueued(Exception):
    """A queuer could not queue these deliveries; ``reason`` says why, as
    `replyguard notify list` shows it after "not queued: ".

    Args:
        delivery_ids: the deliveries that were not queued (those before them were).
        reason: why, e.g. "the task queue (Redis) is unreachable (OperationalError)".
    """

    def __init__(self, delivery_ids: Sequence[int], reason: str) -> None:
        super().__init__(reason)
        self.delivery_ids = list(delivery_ids)
        self.reason = reason


class Queuer(Protocol):
    """What hands committed deliveries on to the workers: called with the settings of the
    change and the delivery ids, in order; raises :class:`NotQueued` naming those it could
    not queue."""

    def __call__(self, settings: Settings, delivery_ids: Sequence[int]) -> None: ...


# The process's queuer. Set once by whatever wires the task queue into the process
# (worker.celery_app.celery_init_app in the web and worker processes, the command line's
# group); it holds no connection or app of its own, so setting it again changes nothing.
_queuer: Queuer | None = None


def set_queuer(queuer: Queuer) -> None:
    """Make ``queuer`` queue the deliveries that this process's changes record from now on.

    Until one is set, deliveries are recorded as not queued ("no task queue in this
    process")."""
    global _queuer
    _queuer = queuer


def queue(settings: Settings, bind: Any, pks: list[int]) -> None:
    """Queue a delivery task for each delivery id, through the process's queuer; those that
    cannot be queued (Redis down, no queuer) are recorded as failed in a session of their own
    on ``bind``. Never raises for a queue or database problem: the change that is notified
    has been committed already and must stand."""
    if _queuer is None:
        failed, reason = pks, "no task queue in this process"
    else:
        try:
            _queuer(settings, pks)
            return
        except NotQueued as exc:
            failed, reason = exc.delivery_ids, exc.reason
        except Exception as exc:
            # A queuer that broke its promise: the change still stands, so record, go on.
            failed, reason = pks, f"queuing failed ({type(exc).__name__}: {exc})"
    log.error("webhook deliveries %s %s", failed, reason)
    try:
        with Session(bind) as session, session.begin():
            webhooks.not_queued(session, failed, reason)
    except Exception:
        log.exception("could not record that webhook deliveries %s were not queued", failed)


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
