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
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.exc import InterfaceError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from core.db import Database
from core.schema import IncomingMessage

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
FLUSH_SIZE = 200
# Trim to the retention limit once every this many messages written, not on every batch.
TRIM_EVERY = 1_000
# Errors that say the database is unreachable or busy, not that a row is bad: the rows wait.
_UNREACHABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)


class IncomingLog:
    """Records messages (text and niche only: no client identity) up to a retention limit.

    The writer thread survives anything a row can do to it: a batch the database refuses is
    written again row by row, and only the rows refused alone are dropped, each logged with
    why. Rows wait in the queue while the database is unreachable. A writer thread that died
    anyway is started again by the next :meth:`record`.
    """

    def __init__(self, db: Database, retention: int) -> None:
        self.db = db
        self.retention = retention
        self._pending: deque[tuple[str, str | None]] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._written = 0
        # Rows refused by the database on their own, since start.
        self.dropped = 0

    def record(self, message: str, niche: str | None) -> None:
        self._pending.append((message.strip(), niche))
        self._ensure_thread()
        if len(self._pending) >= FLUSH_SIZE:
            self._wake.set()

    def flush(self) -> int:
        """Write everything queued now; return how many messages were written.

        Rows the database refuses on their own are dropped and logged; the rest are written,
        or stay queued for the next flush while the database is unreachable.
        """
        batch = []
        while self._pending:
            batch.append(self._pending.popleft())
        if not batch:
            return 0
        try:
            self._insert(batch)
            written = len(batch)
        except _UNREACHABLE:
            self._requeue(batch)
            return 0
        except Exception as exc:
            log.warning(
                "a batch of %d incoming messages was refused (%r); writing each alone",
                len(batch),
                exc,
            )
            written = self._insert_each(batch)
        with self._lock:
            before = self._written
            self._written += written
            due = before // TRIM_EVERY != self._written // TRIM_EVERY
        if due:
            self.trim()
        return written

    def _insert(self, rows: list[tuple[str, str | None]]) -> None:
        with self.db.session() as session:
            # A bulk insert: ORM objects one by one held the GIL for milliseconds.
            session.execute(insert(IncomingMessage), [{"message": m, "niche": n} for m, n in rows])

    def _insert_each(self, batch: list[tuple[str, str | None]]) -> int:
        written = 0
        for position, row in enumerate(batch):
            try:
                self._insert([row])
            except _UNREACHABLE:
                self._requeue(batch[position:])
                break
            except Exception as exc:
                with self._lock:
                    self.dropped += 1
                # ascii(): the row may hold what no log stream can encode (a lone surrogate).
                log.error(
                    "dropped incoming message %s (niche %s): the database refused it: %r",
                    ascii(row[0][:80]),
                    ascii(row[1]),
                    exc,
                )
            else:
                written += 1
        return written

    def _requeue(self, rows: list[tuple[str, str | None]]) -> None:
        # The database is briefly away: keep the messages, first in line, for the next flush.
        self._pending.extendleft(reversed(rows))
        log.warning("could not record %d incoming messages; will retry", len(rows))

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
        # Started on first use, so every forked gunicorn worker gets its own writer; started
        # again if it died.
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                if self._thread is not None:
                    log.error("the incoming-message writer had stopped; starting it again")
                else:
                    atexit.register(self.flush)
                self._thread = threading.Thread(
                    target=self._run, name="incoming-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                # trim() failing, say: the queue is intact, the next round tries again.
                log.exception("the incoming-message writer hit an error; it carries on")
