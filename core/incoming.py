"""Incoming messages: what clients asked about, kept as unlabeled traffic for generations.

Requests only queue the message; a background thread writes the queue in batches (every half
second, or sooner when it fills). A suggestion request therefore never waits on a database
write (one insert and commit per request cost about 3 ms of a 10 ms request). The price: a
crash loses at most the last half second of traffic, which is sampled data, never a human
example.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import deque

from sqlalchemy import delete
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from core.db import Database
from core.schema import IncomingMessage

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
FLUSH_SIZE = 200
# Trim to the retention limit once every this many messages written, not on every batch.
TRIM_EVERY = 1_000


class IncomingLog:
    """Records messages (text and niche only: no client identity) up to a retention limit."""

    def __init__(self, db: Database, retention: int) -> None:
        self.db = db
        self.retention = retention
        self._pending: deque[tuple[str, str | None]] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._written = 0

    def record(self, message: str, niche: str | None) -> None:
        self._pending.append((message.strip(), niche))
        self._ensure_thread()
        if len(self._pending) >= FLUSH_SIZE:
            self._wake.set()

    def flush(self) -> int:
        """Write everything queued now; return how many messages were written."""
        batch = []
        while self._pending:
            batch.append(self._pending.popleft())
        if not batch:
            return 0
        try:
            with self.db.session() as session:
                # A bulk insert: ORM objects one by one held the GIL for milliseconds.
                session.execute(
                    insert(IncomingMessage), [{"message": m, "niche": n} for m, n in batch]
                )
        except SQLAlchemyError:
            # The database is briefly away: keep the messages for the next flush.
            self._pending.extendleft(reversed(batch))
            log.warning("could not record %d incoming messages; will retry", len(batch))
            return 0
        with self._lock:
            before = self._written
            self._written += len(batch)
            due = before // TRIM_EVERY != self._written // TRIM_EVERY
        if due:
            self.trim()
        return len(batch)

    def trim(self) -> int:
        """Delete the oldest messages beyond the retention limit; return how many."""
        with self.db.session() as session:
            newest_dropped = session.scalar(
                select(IncomingMessage.id)
                .order_by(IncomingMessage.id.desc())
                .offset(self.retention)
                .limit(1)
            )
            if newest_dropped is None:
                return 0
            result = session.execute(
                delete(IncomingMessage).where(IncomingMessage.id <= newest_dropped)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def _ensure_thread(self) -> None:
        # Started on first use, so every forked gunicorn worker gets its own writer.
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="incoming-writer", daemon=True
                )
                self._thread.start()
                atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            self.flush()
