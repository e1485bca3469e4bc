"""Incoming messages: what clients asked about, kept as unlabeled traffic for generations."""

from __future__ import annotations

import threading

from sqlalchemy import delete
from sqlalchemy import select

from core.db import Database
from core.schema import IncomingMessage

# Trim to the retention limit once every this many inserts, not on every request.
TRIM_EVERY = 100


class IncomingLog:
    """Records messages (text and niche only: no client identity) up to a retention limit."""

    def __init__(self, db: Database, retention: int) -> None:
        self.db = db
        self.retention = retention
        self._inserts = 0
        self._lock = threading.Lock()

    def record(self, message: str, niche: str | None) -> None:
        with self.db.session() as session:
            session.add(IncomingMessage(message=message.strip(), niche=niche))
        with self._lock:
            self._inserts += 1
            due = self._inserts % TRIM_EVERY == 0
        if due:
            self.trim()

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
